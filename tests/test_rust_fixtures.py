"""The committed fixtures of the Rust tests still hold the Python package's values."""

import importlib.util
import pathlib


def _module():
    path = pathlib.Path(__file__).parent / "rust_fixtures.py"
    spec = importlib.util.spec_from_file_location("rust_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_initializer_fixture_matches_the_package():
    fixtures = _module()
    assert fixtures.FIXTURE.read_text() == fixtures.dumps(fixtures.generate())


def test_optimizer_fixture_matches_the_golden_files():
    import json

    fixtures = _module()
    assert (
        fixtures.OPT_FIXTURE.read_text()
        == json.dumps(fixtures.optimizer_cases(), allow_nan=False) + "\n"
    )


def test_scheduler_fixture_matches_the_package():
    import json

    fixtures = _module()
    expected = json.dumps(fixtures.schedules(), allow_nan=False) + "\n"
    assert fixtures.SCHED_FIXTURE.read_text() == expected


def test_more_optimizer_fixture_matches_the_golden_files():
    import json

    fixtures = _module()
    expected = json.dumps(fixtures.more_optimizer_cases(), allow_nan=False) + "\n"
    assert fixtures.MORE_FIXTURE.read_text() == expected


def test_package_optimizer_fixture_matches_the_package():
    import json

    fixtures = _module()
    expected = json.dumps(fixtures.package_cases(), allow_nan=False) + "\n"
    assert fixtures.PACKAGE_FIXTURE.read_text() == expected
