"""The collaborative-filtering baselines of Table 2 (IDRec CF and VIDRec), under the official
protocol: in-batch softmax with logQ correction, full ranking with the user's history masked.

Class names are Python identifiers; the paper's names map as follows (``+V``: frozen item
features from ``recbole-microlens extract-features``, read from ``features_file``):

=============  ==============  =====================================================
paper          class           item side
=============  ==============  =====================================================
DSSM           ``DSSM``        ItemTower ``id``
DSSMID+V       ``DSSMIDV``     ItemTower ``id+features`` (``fusion: sum | concat``)
LightGCN       ``LightGCN``    RecBole's LightGCN, official loss
NFM            ``NFM``         ItemTower ``id``, previous items as fields
DeepFM         ``DeepFM``      ItemTower ``id``, previous items as fields
YouTubeID      ``YouTubeID``   ItemTower ``id``
YouTubeID+V    ``YouTubeIDV``  ItemTower ``id+features``
MMGCNID        ``MMGCNID``     ``item_modalities: [id]``
MMGCNID+V      ``MMGCNIDV``    ``item_modalities: [id, features]``
GRCNID         ``GRCNID``      ``item_modalities: [id]``
GRCNID+V       ``GRCNIDV``     ``item_modalities: [id, features]``
=============  ==============  =====================================================

SASRecID+V is ``SASRecIDV`` in ``sequential_recommender/sasrec_id_v.py``. How each model
represents a user (by id or by the previous items) is explained in ``base.py``.

Sequential by RecBole's type, CF by the paper: YouTubeID, YouTubeIDV, NFM and DeepFM read the
window of previous items, so RecBole types them SEQUENTIAL (``MLSequentialRecommender``), but
they ignore order (an average, or positions as fields): Table 2 counts them as CF baselines, and
they live here with the other CF models rather than in ``sequential_recommender/``.
"""
from recbole_microlens.model.general_recommender.deepfm import DeepFM
from recbole_microlens.model.general_recommender.dssm import DSSM, DSSMIDV
from recbole_microlens.model.general_recommender.grcn import GRCNID, GRCNIDV
from recbole_microlens.model.general_recommender.lightgcn import LightGCN
from recbole_microlens.model.general_recommender.mmgcn import MMGCNID, MMGCNIDV
from recbole_microlens.model.general_recommender.nfm import NFM
from recbole_microlens.model.general_recommender.youtube import YouTubeID, YouTubeIDV

__all__ = ["DSSM", "DSSMIDV", "DeepFM", "GRCNID", "GRCNIDV", "LightGCN", "MMGCNID", "MMGCNIDV",
           "NFM", "YouTubeID", "YouTubeIDV"]
