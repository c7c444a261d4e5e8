"""RecBole's side of the data: the dataset subclass, histories and loaders."""
