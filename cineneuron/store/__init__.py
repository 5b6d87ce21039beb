"""The embedding store: LanceDB tables + a SQLite catalog."""

from cineneuron.store.rows import EncodedClip, mix_vector, unit  # noqa: F401
from cineneuron.store.search import SearchResult  # noqa: F401
from cineneuron.store.store import Store  # noqa: F401
