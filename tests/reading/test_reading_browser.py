"""End to end in headless Chromium (Debian's, driven by Playwright) against one real
`weeke serve` for the module: the double read and its adjudication, as the users do it.

Reader 1 logs in, sees the three linked images render (the case also has an FA map, hidden by
the default study setting), moves the crosshair in one viewer and sees the others follow, fills
the form with the keyboard, sees the live total, finds the autosaved draft after a reload and
signs with the password. The coordinator then lets readers see FA (`weeke study set`): reader 2
sees four linked viewers render and follow the crosshair, and reads with one item scored
differently. The adjudicator then opens the case, sees both reads side by side with the
differing item marked, resolves it and signs the consensus. Screenshots of the reader's form
page (3 and 4 viewers) and of the adjudication page are kept ($WEEKE_TEST_ARTIFACTS, else
pytest's tmp folder; the folder is printed).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live import REPO, Server, cli_env, weeke

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
                 if Path(p).exists()), None)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
PASSWORD = "browser-test-password-1"
SAMPLE_T2W = REPO / "sample_data" / "sub-01" / "truth" / "sub-01_T2w.nii.gz"

pytestmark = pytest.mark.slow


def write_case(root: Path) -> Path:
    """One case with T1w, T2w, ADC and FA made from the shipped synthetic sample T2w (so the
    screenshots show a brain): T1w = inverted T2w contrast inside the head, ADC ~ T2w,
    FA (0-1, float) high where T2w is low."""
    import nibabel as nib

    t2 = nib.load(SAMPLE_T2W)
    data = np.asarray(t2.dataobj, dtype=np.float32)
    head = data > 0.05 * data.max()
    images = {"T2w": data, "T1w": np.where(head, data.max() - data, 0),
              "ADC": np.where(head, 0.6 + data / data.max() * 1.4, 0) * 1000}
    anat = root / "sub-BROWSER1" / "anat"
    anat.mkdir(parents=True)
    for seq, arr in images.items():
        nib.save(nib.Nifti1Image(arr.astype(np.int16), t2.affine),
                 str(anat / f"sub-BROWSER1_{seq}.nii.gz"))
    fa = np.where(head, 0.1 + 0.7 * (1 - data / data.max()), 0).astype(np.float32)
    nib.save(nib.Nifti1Image(fa, t2.affine), str(anat / "sub-BROWSER1_space-T2w_FA.nii.gz"))
    (root / "participants.tsv").write_text("participant_id\tpma_weeks\tday_of_life\n"
                                           "sub-BROWSER1\t44+2\t29\n")
    return root


@pytest.fixture(scope="module")
def data_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return ["--data", str(tmp_path_factory.mktemp("browser") / "data")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_args: list[str]) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/services.sh installs it)")
    pytest.importorskip("playwright")
    tmp = tmp_path_factory.mktemp("browser-study")
    d = data_args
    env = cli_env(WEEKE_PASSWORD=PASSWORD)
    weeke(["users", "add", "reader1", "--role", "reader", *d],
          ["users", "add", "reader2", "--role", "reader", *d],
          ["users", "add", "adj", "--role", "adjudicator", *d],
          ["cases", "import", str(write_case(tmp / "study")), *d], env=env)
    srv = Server(d, env)
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("WEEKE_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def login(browser: Any, server: str, username: str, landing: str) -> Any:
    """A fresh browser context (own cookies) logged in as ``username``, on its ``landing``
    page (the worklist for a reader, the adjudication list for an adjudicator)."""
    page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    page.goto(server + "/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{landing}")
    return page


def open_case(page: Any, viewers: int = 3) -> float:
    """Click the first case of the list; seconds until ``viewers`` viewers have loaded."""
    t0 = time.perf_counter()
    page.click("table.list a")
    page.wait_for_selector(f"body[data-viewers-loaded='{viewers}']", timeout=30_000)
    return time.perf_counter() - t0


def keyboard_thalamus(page: Any, extent: int, bilateral: bool) -> None:
    """From the thalamus extent group, keyboard only: choose the extent, then the side."""
    from playwright.sync_api import expect

    page.focus("[name='gm_thalamus-extent'][value='0']")
    expect(page.locator("[name='gm_thalamus-laterality']").first).to_be_disabled()
    for _ in range(extent):
        page.keyboard.press("ArrowRight")
    expect(page.locator("[name='gm_thalamus-laterality']").first).to_be_enabled()
    page.keyboard.press("Tab")  # into the laterality group: focus on "unilateral"
    page.keyboard.press("ArrowRight" if bilateral else "Space")
    page.keyboard.press("Tab")  # "not assessable"
    page.keyboard.press("Tab")  # the next item's extent group (disabled groups are skipped)


def keyboard_read(page: Any, extent: int, bilateral: bool, total: str) -> None:
    """Thalamus as given, every other item normal (Space = 0), keyboard only; autosaved."""
    from playwright.sync_api import expect

    keyboard_thalamus(page, extent, bilateral)
    for _ in range(page.locator("fieldset.item").count() - 1):
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
    expect(page.locator("#total")).to_have_text(total)
    expect(page.locator("#total-flag")).to_have_text("")
    expect(page.locator("#score-gm_thalamus")).to_have_text(str(extent + 1 + bilateral))
    page.wait_for_selector("body[data-save-state='saved']")
    expect(page.locator("#save-state")).to_contain_text("Draft saved")


def sign(page: Any) -> None:
    from playwright.sync_api import expect

    page.click("#sign-open")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-status='signed']")
    expect(page.locator("#error")).to_have_text("")
    expect(page.locator("[name='gm_thalamus-extent'][value='2']")).to_be_disabled()


def not_blank(png: bytes) -> float:
    """Fraction of clearly lit pixels in a canvas screenshot."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return float((pixels > 30).mean())


CROSSHAIRS_MM = ("() => window.weekeViewers.map((nv) => "
                 "Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3))")


def check_viewers(page: Any, expected: list[str]) -> None:
    """The viewers show ``expected`` (in order), each canvas lit; a click in the T1w viewer
    moves every other viewer's crosshair to the same millimetre position."""
    sequences = page.evaluate("() => window.weekeViewers.map((nv) => nv.volumes[0].name)")
    assert sequences == [f"{s}.nii.gz" for s in expected]
    assert page.locator("canvas").count() == len(expected)
    for n in range(len(expected)):  # each linked viewer shows an image
        lit = not_blank(page.locator("canvas").nth(n).screenshot())
        assert lit > 0.05, f"viewer {sequences[n]} rendered (almost) nothing ({lit:.3f} lit)"
    before = page.evaluate(CROSSHAIRS_MM)
    box = page.locator("#gl-T1w").bounding_box()  # T1w: the second viewer
    page.mouse.click(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.45)
    page.wait_for_function(f"() => JSON.stringify(({CROSSHAIRS_MM})()[0]) !== "
                           f"{str(before[0])!r}.replace(/ /g, '')")
    after = page.evaluate(CROSSHAIRS_MM)
    t1 = expected.index("T1w")
    assert after[t1] != before[t1], "the click did not move the T1w crosshair"
    for n in range(len(expected)):
        assert np.allclose(after[n], after[t1], atol=1.0), (
            f"{sequences[n]} crosshair at {after[n]} mm, T1w at {after[t1]} mm")


def test_double_read_and_adjudication(server: str, browser: Any, artifacts: Path,
                                      data_args: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import expect

    # ---------------------------------------------------------------- reader 1
    page = login(browser, server, "reader1", "/worklist/")
    load_s = open_case(page)
    # default study setting: clinical sequences only (the case's FA map is not shown)
    check_viewers(page, ["T2w", "T1w", "ADC"])  # the hanging protocol's order

    keyboard_read(page, extent=2, bilateral=True, total="4")
    page.reload()
    page.wait_for_selector("body[data-viewers-loaded='3']", timeout=30_000)
    expect(page.locator("[name='gm_thalamus-extent'][value='2']")).to_be_checked()
    expect(page.locator("[name='gm_thalamus-laterality'][value='2']")).to_be_checked()
    expect(page.locator("#total")).to_have_text("4")
    page.screenshot(path=str(artifacts / "reading_form_page.png"), full_page=True)
    sign(page)
    expect(page.locator("#revise-open")).to_be_visible()
    page.context.close()

    # ------------------------------------------- the coordinator lets readers see FA
    weeke(["study", "set", "--reader-sequences", "T1w,T2w,ADC,FA", "--reason",
           "protocol amendment: FA read", *data_args], env=cli_env())

    # ---------------------------------------------------------------- reader 2, one difference
    page = login(browser, server, "reader2", "/worklist/")
    load_fa_s = open_case(page, viewers=4)
    check_viewers(page, ["T2w", "T1w", "ADC", "FA"])
    fa = page.evaluate("() => { const v = window.weekeViewers[3].volumes[0]; "
                       "return [v.colormap, v.cal_min, v.cal_max]; }")
    assert fa == ["inferno", 0, 1]
    windows = ("() => window.weekeViewers.map((nv) => "
               "[nv.volumes[0].cal_min, nv.volumes[0].cal_max])")
    # window/level presets act on the focused sequence only; FA keeps its fixed windows
    page.locator("#gl-FA").click()
    page.click("[data-preset-step]")
    after = page.evaluate(windows)
    assert after[3] == [0, 0.5]
    page.locator("#gl-T2w").click()
    t2 = page.evaluate(windows)[0]
    page.click("[data-preset-step]")
    assert page.evaluate(windows)[0] != t2 and page.evaluate(windows)[3] == [0, 0.5]
    page.screenshot(path=str(artifacts / "reading_form_page_fa.png"), full_page=True)
    keyboard_read(page, extent=1, bilateral=False, total="2")
    sign(page)
    page.context.close()

    # ---------------------------------------------------------------- adjudicator
    page = login(browser, server, "adj", "/adjudication/")
    # images already checked above: refused here to spare the software-rendered WebGL time
    page.route("**/image/*", lambda route: route.abort())
    open_case(page, viewers=0)
    expect(page.locator("canvas")).to_have_count(4)  # FA shown to the adjudicator too
    rows = page.locator("#compare tbody tr")
    assert rows.count() == page.locator("fieldset.item").count()
    differing = page.locator("#compare tr.differs")
    expect(differing).to_have_count(1)
    from weeke_pipeline.scoring import load_form

    thalamus = load_form("weeke-consensus-2025").item("gm_thalamus")
    ext = {e.value: e.label for e in thalamus.extents}
    expect(differing.locator("td")).to_have_text(
        [thalamus.label, f"2: {ext[2]}, bilateral", f"1: {ext[1]}, unilateral"])
    # the consensus starts from the items both readers agree on: only the thalamus is open
    expect(page.locator("#total-flag")).to_contain_text("1 to score")
    keyboard_thalamus(page, extent=2, bilateral=True)
    expect(page.locator("#total")).to_have_text("4")
    expect(page.locator("#total-flag")).to_have_text("")
    page.wait_for_selector("body[data-save-state='saved']")
    page.screenshot(path=str(artifacts / "reading_adjudication_page.png"), full_page=True)
    sign(page)
    page.goto(server + "/adjudication/")
    expect(page.locator("table.list tbody tr td").last).to_have_text("signed")
    page.context.close()

    with capsys.disabled():
        print(f"\nreading screenshots in {artifacts} (case opened and 3 viewers loaded in "
              f"{load_s:.2f} s, 4 viewers with FA in {load_fa_s:.2f} s)")
    for name in ("reading_form_page.png", "reading_form_page_fa.png",
                 "reading_adjudication_page.png"):
        assert (artifacts / name).stat().st_size > 10_000
