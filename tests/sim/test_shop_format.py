"""A shop world file (a ground truth of :mod:`journeyopt.sim.shop`) carries its format version:
the shipped ones load; a file of another version is refused with one line naming the file, the
version found, the version read and what to do; a file without one still loads when it reads
and is refused the same way when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from journeyopt.errors import ConfigError
from journeyopt.sim.shop import SHOP_FORMAT_VERSION, ShopFormatError, load_shop

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "roastery": ROOT / "src" / "journeyopt" / "simulators" / "roastery" / "world.yaml",
    "wine_club": ROOT / "examples" / "wine_club" / "truth_world.yaml",
}


def _copy(tmp_path: Path, change: dict[str, object], drop: tuple[str, ...] = ()) -> Path:
    raw = yaml.safe_load(SHIPPED["roastery"].read_text())
    raw.update(change)
    for key in drop:
        raw.pop(key)
    path = tmp_path / "shop" / "world.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("name", list(SHIPPED))
def test_the_shipped_shops_record_the_format_they_are_read_in(name: str) -> None:
    assert yaml.safe_load(SHIPPED[name].read_text())["format_version"] == SHOP_FORMAT_VERSION
    assert load_shop(SHIPPED[name]).name == name


@pytest.mark.parametrize("found", [0, SHOP_FORMAT_VERSION + 1])
def test_a_shop_of_another_format_is_one_line(tmp_path: Path, found: int) -> None:
    path = _copy(tmp_path, {"format_version": found})
    with pytest.raises(ShopFormatError) as refused:
        load_shop(path.parent)
    written = "0 (written before journeyopt recorded one)" if found == 0 else str(found)
    message = str(refused.value)
    assert message.startswith(
        f"{path}: shop world format {written}, this journeyopt reads format "
        f"{SHOP_FORMAT_VERSION}; rewrite it in format {SHOP_FORMAT_VERSION}"
    ), message
    assert isinstance(refused.value, ConfigError) and "\n" not in message


def test_an_unversioned_shop_that_still_reads_loads(tmp_path: Path) -> None:
    assert load_shop(_copy(tmp_path, {}, drop=("format_version",))).name == "roastery"


def test_an_unversioned_shop_that_no_longer_reads_is_format_0(tmp_path: Path) -> None:
    path = _copy(tmp_path, {}, drop=("format_version", "refund_lag_weeks"))
    with pytest.raises(ShopFormatError, match=r"shop world format 0 .*refund_lag_weeks") as err:
        load_shop(path)
    assert "\n" not in str(err.value)
    # with today's version recorded, the same file is a plain invalid shop world
    with pytest.raises(ConfigError, match="refund_lag_weeks") as invalid:
        load_shop(_copy(tmp_path / "b", {}, drop=("refund_lag_weeks",)))
    assert not isinstance(invalid.value, ShopFormatError)
