"""The page at the sizes people use it (800 × 600, a 360 px phone) and in dark mode: nothing clipped,
values readable, the file tree a drawer on narrow screens, motion off when the system asks."""

import pytest

from conftest import ARTIFACTS, open_files
from test_page_image import ct_series, show
from test_page_inspect import CT, assert_same_origin_only, wait_for_files

WORKBENCHES = ["tags", "image", "edit", "deid", "volume", "create", "compress"]


def overflowing(page):
    """Elements of the visible panel wider than the panel itself (clipped or scrolled sideways)."""
    return page.evaluate("""() => {
        const panel = [...document.querySelectorAll('[role=tabpanel]')].find((p) => !p.hidden);
        const right = panel.getBoundingClientRect().right + 1;
        return [...panel.querySelectorAll('*')].filter((e) => {
            const box = e.getBoundingClientRect();
            const scrolls = e.closest('.tag-tree, .changes, .image-stage');
            return box.width && e.checkVisibility() && box.right > right && !scrolls;
        }).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`).slice(0, 5);
    }""")


def value_width(page, keyword="PatientName"):
    page.click("#tab-tags")
    page.wait_for_selector(".tag-tree .el:not(.column-heads) .value")
    row = page.locator(".tag-tree .el", has=page.locator(f".name[title='{keyword}']")).first
    return row.locator(".value").bounding_box()["width"]


def test_800_by_600_keeps_tag_values_and_forms_readable(page, server):
    page.set_viewport_size({"width": 800, "height": 600})
    open_files(page, [CT])
    wait_for_files(page, 1)
    assert value_width(page) > 150
    heads = page.inner_text(".tag-tree .column-heads")
    assert all(word in heads for word in ("Tag", "Name", "VR", "Value"))
    for wb in WORKBENCHES:
        page.click(f"#tab-{wb}")
        assert overflowing(page) == [], wb
    page.click("#tab-create")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "layout-800x600-create.png"))
    assert not page.page_errors


def test_a_360_px_screen_gets_a_drawer_and_no_sideways_scrolling(page, server, tmp_path):
    page.set_viewport_size({"width": 360, "height": 740})
    open_files(page, ct_series(tmp_path / "series", count=6))
    wait_for_files(page, 6)
    sidebar = page.locator("#sidebar")
    toggle = page.locator("#drawer-toggle")
    assert sidebar.is_hidden() and toggle.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    page.wait_for_timeout(300)
    assert sidebar.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    assert sidebar.bounding_box()["x"] >= 0
    page.screenshot(path=str(ARTIFACTS / "layout-360-drawer.png"))
    page.click(".file-tree .row.series")
    page.wait_for_timeout(300)
    assert sidebar.is_hidden() and toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    assert sidebar.is_hidden()

    assert value_width(page) > 150
    page.screenshot(path=str(ARTIFACTS / "layout-360-tags.png"))
    for wb in WORKBENCHES:
        page.click(f"#tab-{wb}")
        assert overflowing(page) == [], wb
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, wb
    page.click("#tab-image")
    page.wait_for_selector("#image-canvas:not([hidden])")
    assert page.locator("#image-canvas").bounding_box()["width"] > 250
    page.screenshot(path=str(ARTIFACTS / "layout-360-image.png"))
    assert not page.page_errors
    assert_same_origin_only(page, server)


def luminance(rgb):
    channels = [int(v) / 255 for v in rgb.strip("rgba()").split(",")[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a, b):
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_colours_follow_the_system_scheme_with_readable_contrast(page, server, scheme):
    page.emulate_media(color_scheme=scheme)
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.click("#tab-tags")
    page.wait_for_selector(".tag-tree .el:not(.column-heads) .value")
    colours = page.evaluate("""() => {
        const style = (selector, property) => getComputedStyle(document.querySelector(selector))[property];
        return { page: style('body', 'backgroundColor'), panel: style('.panels', 'backgroundColor'),
                 ink: style('.tag-tree .name', 'color'), muted: style('.tag-tree .vr', 'color'),
                 tag: style('.tag-tree .el:not(.column-heads) .tag', 'color'),
                 primary: style('.primary', 'backgroundColor'), primaryInk: style('.primary', 'color') };
    }""")
    assert (luminance(colours["page"]) < 0.05) == (scheme == "dark")
    for text in ("ink", "muted", "tag"):
        assert contrast(colours[text], colours["panel"]) >= 4.5, (text, colours)
    assert contrast(colours["primary"], colours["primaryInk"]) >= 4.5, colours
    page.screenshot(path=str(ARTIFACTS / f"scheme-{scheme}-tags.png"))
    page.click("#tab-image")
    show(page, "CT_small.dcm", "MONOCHROME2")
    page.screenshot(path=str(ARTIFACTS / f"scheme-{scheme}.png"))


def test_reduced_motion_turns_the_drawer_animation_off(page, server):
    page.set_viewport_size({"width": 400, "height": 700})
    page.emulate_media(reduced_motion="reduce")
    assert page.evaluate("getComputedStyle(document.querySelector('#sidebar')).transitionDuration") in ("0s", "0s, 0s")
    page.emulate_media(reduced_motion="no-preference")
    assert "0.2s" in page.evaluate("getComputedStyle(document.querySelector('#sidebar')).transitionDuration")
