"""A real browser for the web page's tests and benchmark: headless Chromium driven by Selenium.

It uses an installed Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``)
and never downloads one. Selenium comes with the ``[dev]`` extra.
"""

from __future__ import annotations

import shutil
from typing import Any

INSTALL_HINT = "apt-get install chromium chromium-driver (and pip install -e '.[dev]' for selenium)"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def find_browser() -> tuple[str, str] | None:
    """``(browser, driver)`` executables found on the PATH, or ``None`` if either is missing."""
    browser = next((path for path in map(shutil.which, BROWSERS) if path), None)
    driver = next((path for path in map(shutil.which, DRIVERS) if path), None)
    return (browser, driver) if browser and driver else None


def missing_reason() -> str | None:
    """Why no browser can be driven here (naming the install command), or ``None`` if one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed: {INSTALL_HINT}"
    if find_browser() is None:
        return f"no Chromium and chromedriver on the PATH: {INSTALL_HINT}"
    return None


def headless_chromium(width: int = 1100, height: int = 760) -> Any:
    """A Selenium ``webdriver.Chrome`` on the installed Chromium, headless, with a fixed window size.

    :raises RuntimeError: naming the install command if no browser can be driven here
    """
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    # optional: selenium (the [dev] extra) drives the browser only for the page's tests
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()  # type: ignore[misc]
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
