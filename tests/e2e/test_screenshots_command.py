"""scripts/screenshots.py (`make screenshots`): the staff pages come from the URL conf,
and a run on a subset against the live demo writes its PNGs and says how many."""

import pytest

from scripts import screenshots

pytestmark = [pytest.mark.committed, pytest.mark.browser]


def test_the_staff_pages_are_read_from_the_url_conf():
    found = {route: (name, params) for route, name, params in screenshots.routes()}
    assert found["subscribers/"] == ("subscribers:list", False)
    assert found["pipeline/"] == ("subscribers:pipeline", False)
    assert found["reports/mrr/"] == ("reports:mrr", False)
    assert any(params for _, params in found.values())  # details, filled from the demo
    # Not staff pages: the subscriber portal, the captive portal, signing in.
    assert not any(route.startswith(("my/", "hs/")) for route in found)
    assert "login/" not in found and "pay/" not in found


def test_a_subset_is_taken_as_pngs(browser, live_server_url, django_db_blocker, tmp_path, capsys):
    base = f"http://demo.localhost:{live_server_url}"
    with django_db_blocker.unblock():
        code = screenshots.main(
            ["--base", base, "--only", "/subscribers/", "--widths", "360", "--out", str(tmp_path)],
            browser=browser,
        )
    assert code == 0
    png = tmp_path / "subscribers-list-360.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == [png.name]
    assert "1 pages, 1 screenshots at 360 px" in capsys.readouterr().out


def test_bad_arguments_are_refused_with_a_reason(capsys):
    with pytest.raises(SystemExit) as refused:
        screenshots.main(["--widths", "wide"])
    assert refused.value.code == 2
    assert "--widths" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        screenshots.main(["--only", "subscribers"])
    assert "starting with /" in capsys.readouterr().err
