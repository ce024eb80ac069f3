"""Reading as a neuroradiologist reads, in headless Chromium against a real ``weeke serve``:

- a reader scores whole cases with the keyboard only (login, worklist, items, signature, next
  case) and the key presses are counted (normal case, typical injured case);
- linked views: stepping slices by key moves every sequence to the same anatomical slice,
  checked by sampling screenshot pixels against the NIfTI data of each sequence (the test
  images are ramps along z, on two different grids);
- window/level presets change the rendered pixels as the preset's window predicts;
- the layout a reader chose survives a reload;
- idle gaps over the protocol's threshold are left out of the active reading time.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live import Server, cli_env, weeke
from test_reading_browser import ARGS, CHROMIUM, PASSWORD

pytestmark = pytest.mark.slow
SHAPE = (40, 48, 24)


def ramp_case(root: Path, sub: str) -> None:
    """T2w/T1w on a 1 mm grid, ADC on a grid shifted by 5 mm in z with 2 mm pixels in-plane;
    every axial plane uniform, its value a function of the plane's z in millimetres."""
    import nibabel as nib

    anat = root / f"sub-{sub}" / "anat"
    anat.mkdir(parents=True)
    z = np.arange(SHAPE[2], dtype=np.float32)
    vol = np.broadcast_to(z, SHAPE)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-20, -24, -12]
    head = np.zeros(SHAPE, bool)
    head[4:-4, 4:-4, :] = True  # an image frame, so the slice is not the whole canvas
    nib.save(nib.Nifti1Image(np.where(head, 100 + 20 * vol, 0).astype(np.int16), affine),
             str(anat / f"sub-{sub}_T2w.nii.gz"))
    nib.save(nib.Nifti1Image(np.where(head, 900 - 20 * vol, 0).astype(np.int16), affine),
             str(anat / f"sub-{sub}_T1w.nii.gz"))
    adc_shape = (20, 24, SHAPE[2] - 6)
    adc_affine = np.diag([2.0, 2.0, 1.0, 1.0])
    adc_affine[:3, 3] = [-19.5, -23.5, -12 + 5]
    zmm = (np.arange(adc_shape[2]) + 5 - 12).astype(np.float32)  # world z of each plane
    adc = np.broadcast_to(400 + 40 * (zmm + 12), adc_shape).copy()
    adc[:2], adc[-2:], adc[:, :2], adc[:, -2:] = 0, 0, 0, 0
    nib.save(nib.Nifti1Image(adc.astype(np.int16), adc_affine),
             str(anat / f"sub-{sub}_ADC.nii.gz"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/services.sh installs it)")
    pytest.importorskip("playwright")
    tmp = tmp_path_factory.mktemp("keyboard")
    study = tmp / "study"
    for n in range(3):
        ramp_case(study, f"KEY{n}")
    (study / "participants.tsv").write_text(
        "participant_id\tpma_weeks\tday_of_life\n"
        + "".join(f"sub-KEY{n}\t44+{n}\t{29 + n}\n" for n in range(3)))
    d = ["--data", str(tmp / "data")]
    env = cli_env(WEEKE_PASSWORD=PASSWORD)
    weeke(["users", "add", "keys1", "--role", "reader", *d],
          ["users", "add", "keys2", "--role", "reader", *d],
          ["cases", "import", str(study), *d], env=env)
    srv = Server(d, env)
    try:
        yield srv.url, study
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser(server: tuple[str, Path]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


class Keys:
    """Keyboard of one page, counting every press (typing a password counts as one)."""

    def __init__(self, page: Any) -> None:
        self.page, self.count = page, 0

    def press(self, key: str, times: int = 1) -> None:
        for _ in range(times):
            self.page.keyboard.press(key)
            self.count += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.count += 1


def keyboard_login(browser: Any, url: str, user: str, clock: bool = False) -> tuple[Any, Keys]:
    page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    if clock:
        page.clock.install()
    page.goto(url + "/login/")
    keys = Keys(page)
    assert page.evaluate("document.activeElement.id") == "id_username"  # autofocus
    keys.type(user)
    keys.press("Tab")
    keys.type(PASSWORD)
    keys.press("Enter")
    page.wait_for_url("**/worklist/")
    return page, keys


def open_next_case(page: Any, keys: Keys) -> None:
    """From the worklist: the "next case" link has the focus; Enter opens it."""
    page.wait_for_function("document.activeElement && document.activeElement.id === 'next-link'")
    keys.press("Enter")
    page.wait_for_selector("body[data-viewers-loaded='3']", timeout=60_000)


def sign_by_keyboard(page: Any, keys: Keys) -> None:
    keys.press("Shift+Enter")
    keys.type(PASSWORD)
    keys.press("Enter")
    page.wait_for_selector("body[data-status='signed']")


def test_keyboard_only_reading_of_two_cases(server: tuple[str, Path], browser: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import expect

    url, _ = server
    page, keys = keyboard_login(browser, url, "keys1")
    login_keys = keys.count
    # ---------------- a normal case: every item 0, then sign and go on
    open_next_case(page, keys)
    start = keys.count
    n_items = page.locator("fieldset.item").count()
    keys.press("0", n_items)
    expect(page.locator("#total")).to_have_text("0")
    expect(page.locator("#total-flag")).to_have_text("")
    sign_by_keyboard(page, keys)
    normal = keys.count - start
    expect(page.locator("#next-case")).to_be_focused()
    # ---------------- the next case (Shift+N): a typical injured case
    keys.press("Shift+N")
    page.wait_for_selector("body[data-viewers-loaded='3']", timeout=60_000)
    start = keys.count
    # thalamus 2 bilateral, basal ganglia 1 bilateral, PLIC 2 bilateral, the rest 0 except
    # one white-matter item not assessable with a reason
    keys.press("2"), keys.press("b")
    keys.press("1"), keys.press("b")
    keys.press("2"), keys.press("b")
    keys.press("n")
    keys.type("motion")
    keys.press("Enter")
    remaining = n_items - 4
    keys.press("0", remaining)
    expect(page.locator("#total-flag")).to_have_text("(incomplete: 1 not assessable)")
    expect(page.locator("#score-gm_thalamus")).to_have_text("4")
    expect(page.locator("#score-gm_plic")).to_have_text("4")
    total = page.locator("#total").inner_text()
    sign_by_keyboard(page, keys)
    injured = keys.count - start
    # ---------------- the worklist says both are signed, one to do
    keys.press("Shift+N")
    page.wait_for_selector("body[data-viewers-loaded='3']", timeout=60_000)
    page.goto(url + "/worklist/")
    expect(page.locator("#progress")).to_have_attribute("data-signed", "2")
    expect(page.locator("#progress")).to_have_attribute("data-todo", "0")
    page.context.close()
    assert normal == n_items + 3
    with capsys.disabled():
        print(f"\nkeyboard-only reading: login {login_keys} key presses; normal case "
              f"{normal} ({n_items} items + Shift+Enter, password, Enter); injured case "
              f"(total {total}) {injured}")


def _pixel(png: bytes, fx: float = 0.62, fy: float = 0.38) -> float:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    h, w = img.shape
    return float(img[int(h * fy), int(w * fx)])


def _expected_grey(value: float, cal_min: float, cal_max: float) -> float:
    return 255 * float(np.clip((value - cal_min) / (cal_max - cal_min), 0, 1))


def _value_at_mm(path: Path, z_mm: float) -> float:
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    ijk = np.linalg.inv(img.affine) @ np.array([0.0, 0.0, z_mm, 1.0])
    k = round(ijk[2])
    return float(data[data.shape[0] // 2 + 3, data.shape[1] // 2 - 3, k])


def _views(page: Any) -> list[dict[str, float]]:
    return page.evaluate("""() => [...document.querySelectorAll('#viewers figure.viewer')]
        .map((f) => ({seq: f.dataset.sequence, lo: +f.dataset.calMin, hi: +f.dataset.calMax}))""")


def test_linked_slices_window_presets_and_remembered_layout(
        server: tuple[str, Path], browser: Any) -> None:
    url, study = server
    page, keys = keyboard_login(browser, url, "keys2")
    open_next_case(page, keys)
    # every ramp case is identical, so any subject's files are this case's
    files = {s: study / "sub-KEY0" / "anat" / f"sub-KEY0_{s}.nii.gz" for s in ("T2w", "T1w",
                                                                               "ADC")}
    order = [v["seq"] for v in _views(page)]
    assert order == ["T2w", "T1w", "ADC"]  # the hanging protocol's order

    def check_all_at_same_slice() -> float:
        z = float(page.evaluate("document.body.dataset.positionMm").split(",")[2])
        for n, view in enumerate(_views(page)):
            shot = page.locator("#viewers canvas").nth(n).screenshot()
            want = _expected_grey(_value_at_mm(files[view["seq"]], z), view["lo"], view["hi"])
            got = _pixel(shot)
            assert abs(got - want) <= 4, f"{view['seq']} at z={z} mm: grey {got}, expected {want}"
        return z

    z0 = check_all_at_same_slice()
    for step in ("ArrowUp", "ArrowUp", "ArrowUp", "PageDown"):
        page.keyboard.press(step)
    z1 = check_all_at_same_slice()
    assert z1 == pytest.approx(z0 + 3 - 5)

    # window/level: the ADC view's next preset (restriction 400-1400) re-renders as predicted
    page.keyboard.press("v"), page.keyboard.press("v")
    assert page.evaluate("document.body.dataset.focusedSequence") == "ADC"
    before = _views(page)[2]
    page.keyboard.press("w")
    after = _views(page)[2]
    assert (before["lo"], before["hi"]) == (0, 2000) and (after["lo"], after["hi"]) == (400, 1400)
    check_all_at_same_slice()
    # coarse window by key: narrower by 20 %, centred on the same level
    page.keyboard.press("[")
    narrowed = _views(page)[2]
    assert narrowed["hi"] - narrowed["lo"] == pytest.approx(800)
    assert (narrowed["hi"] + narrowed["lo"]) / 2 == pytest.approx(900)
    check_all_at_same_slice()

    # layout: three planes of the focused sequence, remembered over a reload
    page.keyboard.press("t")
    page.wait_for_selector("body[data-layout-saved='three-plane']")
    page.reload()
    page.wait_for_selector("body[data-viewers-loaded='3']", timeout=60_000)
    assert page.evaluate("document.body.dataset.layout") == "three-plane"
    assert page.locator("#viewers figure.viewer:not([hidden])").count() == 1
    page.keyboard.press("t")  # back to the default for the next test run
    page.wait_for_selector("body[data-layout-saved='side-by-side']")
    page.context.close()


def test_idle_gaps_are_left_out_of_active_time(server: tuple[str, Path], browser: Any) -> None:
    url, _ = server
    page, keys = keyboard_login(browser, url, "keys2", clock=True)
    open_next_case(page, keys)
    keys.press("0")
    page.clock.run_for(3000)           # 3 s of reading: counted
    keys.press("0")
    page.clock.fast_forward("05:00")   # 5 minutes away from the desk: idle, left out
    n = page.locator("fieldset.item").count()
    keys.press("0", n - 2)
    sign_by_keyboard(page, keys)
    page.context.close()
    rows = _timing_from_audit(server)
    assert rows, "no read.timing audit entry after signing"
    active = rows[-1]["new"]["active_seconds"]
    assert 3.0 <= active < 60.0, f"active time {active} s should exclude the 5-minute gap"


def _timing_from_audit(server: tuple[str, Path]) -> list[dict[str, Any]]:
    """The read.timing audit entries, read through the CLI's audit export."""
    import sqlite3

    _url, study = server
    db = next(Path(study).parent.glob("data/*.sqlite3"))
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT object_id, new FROM reading_auditentry "
                            "WHERE action = 'read.timing' ORDER BY id").fetchall()
    return [{"object_id": r[0], "new": json.loads(r[1])} for r in rows]
