"""The file list and the task bar: downloads that fold, non-DICOM inputs sent where they belong,
integrity marks (truncated files, repeated SOP Instance UIDs) and removing files.
"""

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, wait_for_files


def test_downloads_fold_behind_n_more_and_clear(page):
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.click("#tab-edit")
    apply_box = page.locator("#edit-apply").bounding_box()
    bar_before = page.locator("#tasks").bounding_box()["height"]
    page.evaluate("""() => {
      for (let i = 1; i <= 12; i++) {
        window.dcmstudio.tasks.addDownload(new Blob([new Uint8Array(1000 * i)]), `edited_series_${i}.zip`);
      }
    }""")
    shown = page.locator(".download-list li:visible")
    assert shown.count() == 3
    assert shown.first.inner_text().startswith("edited_series_12.zip")
    more = page.locator(".download-more")
    assert more.inner_text() == "9 more"
    bar_after = page.locator("#tasks").bounding_box()["height"]
    assert bar_after <= bar_before + 4, f"the task bar grew from {bar_before} to {bar_after} px"
    # the action button is where it was and nothing lies over it
    assert page.locator("#edit-apply").bounding_box() == apply_box
    x, y = apply_box["x"] + apply_box["width"] / 2, apply_box["y"] + apply_box["height"] / 2
    assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('#edit-apply') !== null", [x, y])
    page.screenshot(path=str(ARTIFACTS / "files-downloads-folded.png"))
    more.click()
    assert page.locator(".download-list li:visible").count() == 12
    assert more.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(ARTIFACTS / "files-downloads-expanded.png"))
    more.click()
    # removing one shows the next; Clear empties the bar
    page.locator(".download-list li:visible button").first.click()
    assert page.locator(".download-list li:visible").count() == 3
    assert more.inner_text() == "8 more"
    page.click(".download-clear")
    assert page.locator(".download-list li").count() == 0
    assert not page.locator(".downloads").is_visible()
    assert not page.page_errors
