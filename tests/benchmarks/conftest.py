import pytest

import bench_fixtures
from xlt.benchmarks import sources


@pytest.fixture(scope="session")
def bench_dirs(tmp_path_factory):
    """{benchmark name: local source directory} of the fixture sets (written once per session)."""
    return bench_fixtures.write_all(tmp_path_factory.mktemp("benchmarks"))


@pytest.fixture(autouse=True)
def _fresh_source_cache():
    sources.clear_cache()
    yield
    sources.clear_cache()
