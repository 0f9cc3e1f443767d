"""Accessibility, measured: axe-core finds nothing on any workbench (empty and with files, wide and
narrow, light and dark); the file tree is one ARIA tree used with the keyboard alone; the drawer of
narrow screens holds the focus while open."""

import pytest

from axe import axe_source, violations
from conftest import ARTIFACTS, open_files
from test_page_image import ct_series
from test_page_inspect import CT, MR, NESTED, wait_for_files

SIZES = {"wide": {"width": 1400, "height": 860}, "narrow": {"width": 390, "height": 780}}


@pytest.fixture(scope="module")
def axe():
    return axe_source()


def workbenches(page):
    return page.evaluate("window.dcmstudio.workbenches.map((wb) => wb.id)")


def check_every_workbench(page, axe, when):
    found = {}
    for wb in workbenches(page):
        page.evaluate(f"window.dcmstudio.activate('{wb}')")
        page.wait_for_timeout(400)  # a first showing may load what the tab lists
        found.update({f"{when} {wb}: {v}": None for v in violations(page, axe)})
    return list(found)


@pytest.mark.parametrize("size", ["wide", "narrow"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_any_workbench(page, server, axe, size, scheme, tmp_path):
    page.set_viewport_size(SIZES[size])
    page.emulate_media(color_scheme=scheme)
    found = check_every_workbench(page, axe, "empty")
    open_files(page, [*ct_series(tmp_path / "series", count=5), MR])
    wait_for_files(page, 6)
    page.wait_for_selector(".task.done:has-text('Opened 6 DICOM files')", timeout=60000)
    if size == "narrow":
        page.click("#drawer-toggle")
    page.locator(".file-tree .row.series").first.click()
    found += check_every_workbench(page, axe, "loaded")
    if size == "narrow":
        page.click("#drawer-toggle")
        page.wait_for_timeout(300)
        found += [f"drawer: {v}" for v in violations(page, axe)]
        page.screenshot(path=str(ARTIFACTS / f"a11y-{size}-{scheme}-drawer.png"))
    assert not found, "\n".join(found)
    assert not page.page_errors


def focused(page):
    """The focused tree item's name (its data-name, lower case), or what else has the focus."""
    return page.evaluate("""() => {
        const item = document.activeElement.closest('[role=treeitem]');
        return item ? item.dataset.name : `${document.activeElement.tagName}#${document.activeElement.id}`;
    }""")


def selected(page):
    return page.locator("[role=treeitem][aria-selected=true]").evaluate_all("(items) => items.map((i) => i.dataset.name)")


def test_a_skip_link_leads_past_the_header_and_the_file_tree(page, server):
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.keyboard.press("Tab")
    link = page.locator(".skip-link")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert link.bounding_box()["y"] >= 0  # shown once it has the focus
    page.screenshot(path=str(ARTIFACTS / "a11y-skip-link.png"))
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "tab-tags"
    assert not page.page_errors


def here(page):
    """What has the focus: 'tree:' and the item's id inside the file tree, else the element and its id."""
    return page.evaluate("""() => { const e = document.activeElement;
        return e.closest('#file-tree') ? `tree:${e.dataset.id}` : `${e.tagName.toLowerCase()}#${e.id}`; }""")


def tabs_to_workbench(page, limit=60):
    """The stops Tab makes from where the focus is to the first workbench tab."""
    stops = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stops.append(here(page))
        if stops[-1] == "button#tab-tags":
            return stops
    raise AssertionError(f"Tab did not reach the workbench within {limit} presses: {stops}")


def test_the_file_tree_is_one_tab_stop_and_works_from_the_keyboard_alone(page, server, tmp_path):
    series = ct_series(tmp_path / "series", count=5)
    open_files(page, [*series, MR])
    wait_for_files(page, 6)
    page.wait_for_selector(".task.done:has-text('Opened 6 DICOM files')", timeout=60000)
    tree = page.locator("#file-tree [role=tree]")
    assert tree.get_attribute("aria-multiselectable") == "true"
    assert page.locator("#file-tree [role=group]").count() == 6  # 2 patients, 2 studies, 2 series
    # from the top of the page: 2 stops a row before (171 Tabs past 38 files), now one for the tree
    assert tabs_to_workbench(page) == ["a#skip-link", "input#open-files", "input#open-folder", "button#remove-files", "tree:all",
                                       "button#tab-tags"]

    # Tab into the tree: "Everything loaded" (selected) has the focus; arrows move it
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "everything loaded"
    items = page.locator("#file-tree [role=treeitem]")
    first_level = page.locator("#file-tree [role=tree] > [role=treeitem]")
    assert [first_level.nth(i).get_attribute(a) for i in range(3) for a in ("aria-level", "aria-posinset", "aria-setsize")] \
        == ["1", "1", "3", "1", "2", "3", "1", "3", "3"]
    page.keyboard.press("ArrowDown")
    assert focused(page) == "compressedsamples^ct1"
    page.keyboard.press("ArrowRight")  # open: to its first child, the study
    assert page.evaluate("document.activeElement.getAttribute('aria-level')") == "2"
    page.keyboard.press("ArrowLeft")  # an open item closes
    assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "false"
    page.keyboard.press("ArrowLeft")  # a closed one goes to its parent
    assert focused(page) == "compressedsamples^ct1"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # opens the study again
    page.keyboard.press("ArrowUp")
    assert focused(page) == "compressedsamples^ct1"
    page.keyboard.press("ArrowLeft")  # close it: its rows are gone from view
    patient = page.locator("[role=treeitem][data-name='compressedsamples^ct1']")
    assert patient.get_attribute("aria-expanded") == "false"
    assert focused(page) == "compressedsamples^ct1"  # the focus survives the redraw
    assert page.locator(".row.instance:visible").count() == 1
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowLeft")
    assert page.locator(".row.instance:visible").count() == 0
    page.keyboard.press("*")  # opens both patients
    assert page.locator(".row.instance:visible").count() == 6
    assert patient.get_attribute("aria-expanded") == "true"
    page.keyboard.press("End")
    assert focused(page) == "mr_small.dcm"
    page.keyboard.press("Home")
    assert focused(page) == "everything loaded"

    # type-ahead: the first letters of a name
    page.keyboard.type("mr_s")
    assert focused(page) == "mr_small.dcm"
    page.keyboard.press("Enter")
    assert selected(page) == ["mr_small.dcm"]
    assert page.evaluate("window.dcmstudio.files.selection.label") == "MR_small.dcm"
    assert page.locator("#tags-file option").all_inner_texts() == ["MR_small.dcm"]

    # a range with Shift+arrows, then Ctrl+Space adds one, and again takes it away
    names = sorted(p.name.lower() for p in series)
    first_ct = page.evaluate("""() => [...document.querySelectorAll('.row.instance .label')]
        .map((l) => l.textContent.toLowerCase())""")
    page.keyboard.type(first_ct[0][:8])
    assert focused(page) == first_ct[0]
    page.keyboard.press(" ")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowDown")
    assert selected(page) == first_ct[:3]
    assert page.inner_text("#remove-files") == "Remove these 3 files from the list"
    assert page.evaluate("window.dcmstudio.files.selection.label") == "3 files"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Control+Space")
    assert selected(page) == first_ct[:4]
    page.keyboard.press("Control+Space")
    assert selected(page) == first_ct[:3]
    assert sorted(first_ct[:5]) == names
    page.screenshot(path=str(ARTIFACTS / "a11y-tree-keyboard.png"))

    # Delete removes the selected files; the focus stays in the tree
    page.keyboard.press("Delete")
    page.wait_for_function("window.dcmstudio.files.count() === 3")
    remaining = [t.lower() for t in page.locator(".row.instance .label").all_inner_texts()]
    assert remaining == [first_ct[3], first_ct[4], "mr_small.dcm"]
    assert page.evaluate("document.activeElement.closest('#file-tree') !== null")
    assert focused(page) == first_ct[3]  # the focused row was not selected: it stays, and keeps the focus
    page.keyboard.press("Tab")
    assert here(page) == "button#tab-tags"
    page.keyboard.press("Shift+Tab")
    assert focused(page) == first_ct[3]
    page.keyboard.press("Shift+Tab")
    assert here(page) == "button#remove-files"
    assert not page.page_errors


def test_shift_and_ctrl_clicks_select_several_rows(page, server, tmp_path):
    open_files(page, [*ct_series(tmp_path / "series", count=5), CT])
    wait_for_files(page, 6)
    rows = page.locator(".row.instance")
    rows.nth(0).click()
    rows.nth(2).click(modifiers=["Shift"])
    assert len(selected(page)) == 3
    rows.nth(4).click(modifiers=["Control"])
    assert len(selected(page)) == 4
    assert page.evaluate("window.dcmstudio.files.selection.label") == "4 files"
    picked = set(selected(page))
    series = page.locator("[role=treeitem][data-id^='r:']").first
    in_series = set(series.locator("[role=treeitem]").evaluate_all("(items) => items.map((i) => i.dataset.name)"))
    series.locator(".row.series").click(modifiers=["Control"])
    assert page.evaluate("window.dcmstudio.files.selection.label") == "1 series, 4 files"
    page.click("#tab-validate")
    # the series' files and the 4, each counted once
    assert f"({len(picked | in_series)} files)" in page.inner_text("#validate-scope")
    assert not page.page_errors


def test_a_large_series_starts_folded_and_unfolds_from_the_keyboard(page, server):
    # 600 listed files of one series, described here rather than by Python: this is about the tree
    page.evaluate("""() => {
        const files = window.dcmstudio.files;
        const sent = [], described = [];
        for (let i = 0; i < 600; i++) {
            const key = files.newKey();
            sent.push({ key, file: new File([], `slice_${i}.dcm`), name: `slice_${i}.dcm` });
            described.push({ ok: true, dicom: true, key, name: `slice_${i}.dcm`, path: `/none/${key}`, size: 1000,
              sop_instance_uid: `1.2.3.${i}`, patient: { name: 'BIG^SERIES', id: '1' },
              study: { uid: '1.2.3', date: '20240301', description: 'CT' },
              series: { uid: '1.2.3.4', modality: 'CT', number: 2, description: 'Thin' },
              instance: { number: i + 1, frames: 1 },
              transfer_syntax: { uid: '1.2.840.10008.1.2.1', name: 'Explicit VR Little Endian' } });
        }
        files.add(described, sent);
    }""")
    page.wait_for_selector(".row.series")
    series = page.locator("[role=treeitem][data-id^='r:']")
    assert series.get_attribute("aria-expanded") == "false"
    assert page.locator(".row.instance").count() == 0  # not even built
    series.locator(".row.series").click()
    page.keyboard.press("Home")
    page.keyboard.press("*")  # opens the patient's siblings, never a large series
    assert page.locator(".row.instance").count() == 0
    series.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelectorAll('.row.instance').length === 600")
    assert focused(page) == "ct 2 thin"
    page.keyboard.press("ArrowRight")
    assert focused(page) == "slice_0.dcm"
    assert page.evaluate("document.activeElement.getAttribute('aria-setsize')") == "600"
    page.keyboard.press("End")
    assert focused(page) == "slice_599.dcm"
    assert not page.page_errors


def test_the_drawer_holds_the_focus_and_escape_gives_it_back(page, server, tmp_path):
    page.set_viewport_size({"width": 390, "height": 780})
    open_files(page, [*ct_series(tmp_path / "series", count=5)])
    wait_for_files(page, 5)
    toggle = page.locator("#drawer-toggle")
    toggle.focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert toggle.get_attribute("aria-expanded") == "true"
    assert focused(page) == "everything loaded"
    inside = "document.activeElement.closest('#sidebar') !== null"
    seen = set()
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate(inside)
        seen.add(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    for _ in range(8):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(inside)
    assert "remove-files" in seen and len(seen) >= 2
    page.screenshot(path=str(ARTIFACTS / "a11y-drawer-focus.png"))
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "drawer-toggle"
    # picking a row with Enter selects it and closes the drawer, focus back on the opener
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "drawer-toggle"
    assert page.evaluate("window.dcmstudio.files.selection.level") == "patient"
    assert not page.page_errors


def test_axe_is_refused_when_its_tarball_is_not_the_pinned_one(tmp_path, monkeypatch):
    import axe  # noqa: PLC0415

    monkeypatch.setattr(axe, "CACHE", tmp_path)
    (tmp_path / f"axe-core-{axe.AXE_VERSION}.tgz").write_bytes(b"not the reviewed package")
    with pytest.raises(RuntimeError, match="pins e6b0ce02"):
        axe.axe_source()


def test_the_tag_tree_is_one_tab_stop_and_edits_from_the_keyboard(page, server):
    open_files(page, [NESTED])
    wait_for_files(page, 1)
    page.wait_for_selector(".tag-tree .el:not(.column-heads) .value")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert here(page) == "button#tab-tags"
    stops = []
    for _ in range(40):
        page.keyboard.press("Tab")
        if not page.evaluate("document.activeElement.closest('#panel-tags') !== null"):
            break
        stops.append(page.evaluate("document.activeElement.closest('.tag-tree') ? 'tree' : document.activeElement.id"))
    # 797 stops for CT_small.dcm's 266 rows before: a value, Copy and Delete button in each
    assert stops.count("tree") == 1 and len(stops) <= 8, stops
    page.keyboard.press("Shift+Tab")
    while page.evaluate("document.activeElement.closest('.tag-tree') === null"):
        page.keyboard.press("Shift+Tab")
    row_text = "document.activeElement.closest('[role=treeitem]').textContent"
    for _ in range(60):
        if "(0010,0010)" in page.evaluate(row_text):
            break
        page.keyboard.press("ArrowDown")
    assert "(0010,0010)" in page.evaluate(row_text)
    page.keyboard.press("Enter")  # edits the value in place
    assert page.evaluate("document.activeElement.className") == "value-input"
    page.keyboard.press("Control+A")
    page.keyboard.type("KEYBOARD^EDIT")
    page.keyboard.press("Enter")
    page.wait_for_function("window.dcmstudio.edits.list.length === 1")
    assert page.evaluate("window.dcmstudio.edits.list[0]") == {"op": "set", "path": "PatientName", "value": "KEYBOARD^EDIT"}
    assert "(0010,0010)" in page.evaluate(row_text)  # the focus is back on its row
    page.keyboard.press("Delete")
    page.wait_for_function("window.dcmstudio.edits.list.length === 2")
    assert page.evaluate("window.dcmstudio.edits.list[1]") == {"op": "delete", "path": "PatientName"}
    # a sequence opens with Right and its first item is next; Left closes, or goes up a level
    for _ in range(200):
        if page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "false":
            break
        page.keyboard.press("ArrowDown")
    sequence = page.evaluate("document.activeElement.dataset.id")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "true"
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.classList.contains('item')")
    page.keyboard.press("ArrowLeft")  # the item is open: it closes
    assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "false"
    page.keyboard.press("ArrowLeft")  # then up to its sequence
    assert page.evaluate("document.activeElement.dataset.id") == sequence
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "false"
    page.screenshot(path=str(ARTIFACTS / "a11y-tag-tree-keyboard.png"))
    assert not page.page_errors
