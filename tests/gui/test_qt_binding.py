"""The Qt binding itself: a refcount bug there crashes the app however good our code is."""

from __future__ import annotations

import sys

import pytest

import PySide6
from PySide6.QtCore import QObject
from pytestqt.qtbot import QtBot


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_calls_returning_void_keep_none_alive(qtbot: QtBot) -> None:
    target = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        target.setObjectName("probe")
    lost = before - sys.getrefcount(None)
    assert lost < 100, (
        f"PySide6 {PySide6.__version__} drops a reference to None on each call that returns "
        f"void ({lost} in 1000 calls); on Python {sys.version_info[0]}.{sys.version_info[1]} the "
        "window aborts with 'deallocating None' once enough calls add up. Pin another "
        "PySide6-Essentials (6.11.3 is fine) or run on Python 3.12+."
    )
