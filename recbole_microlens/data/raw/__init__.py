"""The official MicroLens files: line-level readers, item/title files, and the conversion to
RecBole atomic files under the official protocol."""
