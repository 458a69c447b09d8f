"""Issue #15: in a group call the person speaking is marked. Three people in the serverless
mesh (mesh_harness.py), each page with the call page's tiles (`mountTiles`) and speaking
rings (`watchSpeaking`): the speaker's microphone plays a looped spoken sentence, the listener's
and the watcher's play digital silence. On the watcher's page the speaker's tile is ringed and
the listener's never is; once the speaker mutes their microphone the ring clears and stays off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import (
    CHROMIUM_ARGS,
    BrowserHarness,
    LaunchedBrowsers,
    LiveSite,
    close_contexts,
)
from tests.browser.mesh_harness import SMALL_VIDEO, open_mesh
from tests.browser.test_features_browser import (
    SAMPLE_RATE,
    SENTENCE,
    run,
    voice_span_ms,
    write_silence,
)
from tests.browser.video_helpers import MEDIA_ARGS, MEDIA_TIMEOUT_MS, POLL_MS

pytestmark = pytest.mark.browser

PEOPLE = ("watcher", "speaker", "listener")
SPEAKING = re.compile(r"\bis-speaking\b")

# The call page's tiles on this page, one per pair, ringed as callpage.js rings them; every
# time the listener's tile is ringed is counted (it never should be).
MOUNT_TILES = """
async ({ intervalMs }) => {
  const { mountTiles, watchSpeaking } = await import("/static/js/tiles.js");
  const stage = document.createElement("div");
  stage.className = "stage";
  const primaryVideo = document.createElement("video");
  stage.append(primaryVideo);
  document.body.append(stage);
  const tiles = mountTiles({ stage, primaryVideo, codes: null });
  const { mesh } = window.__mesh;
  const byPeer = new Map();
  for (const { peerId, call } of mesh.entries()) {
    const tile = tiles.add(peerId, peerId, () => {});
    if (call.remoteStream) tile.video.srcObject = call.remoteStream;
    byPeer.set(peerId, tile);
  }
  window.__listenerRinged = 0;
  new MutationObserver(() => {
    if (document.querySelector('[data-peer-id="listener"]').classList.contains("is-speaking")) {
      window.__listenerRinged += 1;
    }
  }).observe(document.querySelector('[data-peer-id="listener"]'), { attributes: true });
  watchSpeaking(
    () => mesh.entries().map(({ peerId, call }) => ({
      pc: call.pc, setSpeaking: (on) => byPeer.get(peerId).setSpeaking(on),
    })),
    intervalMs,
  );
}
"""
# Once this tile has been without its ring for `quietMs` in a row: how long that took (ms),
# or null at the deadline. (Between words a speaker's ring may blink off; muted, it stays off.)
QUIET_FOR = """
async ({ peerId, quietMs, timeoutMs }) => {
  const tile = document.querySelector(`[data-peer-id="${peerId}"]`);
  const start = performance.now();
  let quietSince = start;
  while (performance.now() - start < timeoutMs) {
    if (tile.classList.contains("is-speaking")) quietSince = performance.now();
    else if (performance.now() - quietSince >= quietMs) return Math.round(quietSince - start);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}
"""
# The call page's interval (callpage.js SPEAKING_INTERVAL_MS).
INTERVAL_MS = 300
# Between words the ring may blink off for a moment; muted, it stays off this long.
QUIET_MS = 2_000
CLEARS_WITHIN_MS = 3_000
REPEATS = 4  # the sentence back to back, so the speaker is never quiet for QUIET_MS


@dataclass(frozen=True)
class Microphones:
    speech: Path
    silence: Path


@pytest.fixture(scope="module")
def microphones(tmp_path_factory: pytest.TempPathFactory) -> Microphones:
    """Continuous speech (espeak-ng's sentence, REPEATS times, no pauses) and digital silence,
    16 kHz mono; Chromium loops each."""
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing {missing}; `make system-deps` installs them")
        pytest.skip(f"missing {missing}")
    directory = tmp_path_factory.mktemp("microphones")
    raw, speech = directory / "raw.wav", directory / "speech.wav"
    run("espeak-ng", "-w", str(raw), SENTENCE)
    rate = ("-r", str(SAMPLE_RATE), "-c", "1", "-b", "16")
    run("sox", *[str(raw)] * REPEATS, *rate, str(speech))
    start_ms, end_ms = voice_span_ms(speech)
    assert start_ms is not None and end_ms is not None, "no voice in the speech file"
    silence = write_silence(directory, speech).path
    assert silence.is_file()  # a missing file silently plays silence
    return Microphones(speech=speech, silence=silence)


async def browser_hearing(launched_browsers: LaunchedBrowsers, microphone: Path) -> Browser:
    """The run's browser whose fake microphone plays this file, looped."""
    flag = f"--use-file-for-fake-audio-capture={microphone}"
    return await launched_browsers.get((*CHROMIUM_ARGS, *MEDIA_ARGS, flag))


@pytest.fixture
async def speaking_harness(
    launched_browsers: LaunchedBrowsers, microphones: Microphones
) -> AsyncIterator[BrowserHarness]:
    """A browser whose microphone speaks without pause (the speaker's)."""
    launched = await browser_hearing(launched_browsers, microphones.speech)
    yield BrowserHarness(launched)
    await close_contexts(launched)


@pytest.fixture
async def silent_harness(
    launched_browsers: LaunchedBrowsers, microphones: Microphones
) -> AsyncIterator[BrowserHarness]:
    """A browser whose microphone is silent (Chromium's default beep would ring a tile)."""
    launched = await browser_hearing(launched_browsers, microphones.silence)
    yield BrowserHarness(launched)
    await close_contexts(launched)


async def test_the_speaker_s_tile_is_ringed_the_silent_person_s_is_not_and_muting_clears_it(
    silent_harness: BrowserHarness, speaking_harness: BrowserHarness, live_site: LiveSite
) -> None:
    mesh = await open_mesh(
        silent_harness,
        live_site.base_url,
        PEOPLE,
        SMALL_VIDEO,
        elsewhere={"speaker": speaking_harness},
    )
    await mesh.update(PEOPLE)
    seen = await mesh.pairs_ready(
        "watcher", ["speaker", "listener"], {}, MEDIA_TIMEOUT_MS * 2, POLL_MS
    )
    assert all(pair["frames"] > 0 for pair in seen.values()), json.dumps(seen)
    watcher = mesh.pages["watcher"]
    await watcher.evaluate(MOUNT_TILES, {"intervalMs": INTERVAL_MS})

    speaker_tile = watcher.locator('[data-peer-id="speaker"]')
    await expect(speaker_tile).to_have_class(SPEAKING)
    await expect(watcher.locator('[data-peer-id="listener"]')).not_to_have_class(SPEAKING)

    # the speaker mutes: within a few seconds their ring is off and stays off
    await mesh.pages["speaker"].evaluate(
        "() => window.__mesh.stream.getAudioTracks().forEach((t) => { t.enabled = false; })"
    )
    cleared_after = await watcher.evaluate(
        QUIET_FOR,
        {"peerId": "speaker", "quietMs": QUIET_MS, "timeoutMs": CLEARS_WITHIN_MS + QUIET_MS},
    )
    assert cleared_after is not None and cleared_after <= CLEARS_WITHIN_MS, cleared_after
    assert await watcher.evaluate("() => window.__listenerRinged") == 0
    silent_harness.assert_no_policy_violations()
    speaking_harness.assert_no_policy_violations()
