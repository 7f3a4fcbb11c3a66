import pytest

from tests.distributed.tiny_grid import tiny_design


@pytest.fixture(scope="module")
def design(smollm2, tmp_path_factory):
    """The tiny grid's inputs (tiny_grid.tiny_design), once per module."""
    return tiny_design(smollm2, tmp_path_factory.mktemp("sae") / "sae")
