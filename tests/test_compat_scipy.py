"""scipy >= 1.13 removed ``dok_matrix._update``, with which RecBole's LightGCN builds its graph."""
import types

import numpy as np
import pytest
import scipy
from recbole.model.general_recommender.lightgcn import LightGCN
from scipy import sparse

from recbole_microlens import compat

SCIPY_WITHOUT_DOK_UPDATE = tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 13)


def _interactions(n_users=3, n_items=4):
    """What RecBole's ``LightGCN.get_norm_adj_mat`` reads from ``self``."""
    matrix = sparse.coo_matrix((np.ones(3), ([1, 2, 2], [1, 1, 3])), shape=(n_users, n_items),
                               dtype=np.float32)
    return types.SimpleNamespace(n_users=n_users, n_items=n_items, interaction_matrix=matrix)


def _expected_normalised_adjacency(graph) -> np.ndarray:
    n = graph.n_users + graph.n_items
    adjacency = np.zeros((n, n), dtype=np.float32)
    rows, cols = graph.interaction_matrix.row, graph.interaction_matrix.col + graph.n_users
    adjacency[rows, cols] = adjacency[cols, rows] = 1
    scale = (adjacency.sum(axis=1) + 1e-7) ** -0.5
    return scale[:, None] * adjacency * scale[None, :]


@pytest.mark.skipif(not SCIPY_WITHOUT_DOK_UPDATE,
                    reason="scipy < 1.13 still has dok_matrix._update")
def test_stock_lightgcn_graph_breaks_on_new_scipy_and_the_fix_repairs_it(monkeypatch):
    monkeypatch.delattr(sparse.dok_matrix, "_update", raising=False)  # scipy as installed
    graph = _interactions()
    with pytest.raises(AttributeError, match="_update"):
        LightGCN.get_norm_adj_mat(graph)

    assert compat.restore_dok_update() is True
    assert compat.restore_dok_update() is False  # idempotent
    adjacency = LightGCN.get_norm_adj_mat(graph).to_dense().numpy()
    np.testing.assert_allclose(adjacency, _expected_normalised_adjacency(graph), rtol=1e-6)


def test_apply_installs_the_fix(monkeypatch):
    monkeypatch.delattr(sparse.dok_matrix, "_update", raising=False)
    monkeypatch.setattr(compat, "_applied", False)
    compat.apply()
    LightGCN.get_norm_adj_mat(_interactions())  # no AttributeError
