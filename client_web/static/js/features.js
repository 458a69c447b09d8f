// @ts-check
/**
 * On-device nonverbal features for the cue engine (DESIGN.md §7; the wire format is
 * docs/cues.md §1, validated by `server/core/cues/features.py: parse_features`).
 *
 * `startFeatureStream` analyses this browser's OWN microphone and camera at 15 Hz and, about
 * once per `intervalMs`, hands `send` one `features` message. Raw audio and video never leave
 * the device: only the numbers below do. No DOM writes (a detached <video> is the frame
 * source), nothing fetched.
 *
 * What the numbers mean (the contract with the cue engine):
 * - Clock: session time is `clock() - clockOriginMs`, rounded to whole ms; the origin defaults
 *   to the moment the stream starts (pass the shared session start to align both browsers).
 *   `t_ms` is the window's end; windows are contiguous (each starts where the last ended),
 *   `window_ms` is the real elapsed time, at most 5000 (older time is dropped after a stall).
 * - Voice activity, per 15 Hz frame from an AnalyserNode (2048-point FFT): a frame is speech
 *   when its RMS is at least 10 dB above an adaptive noise floor and at least -55 dBFS, AND its
 *   spectrum looks like a voice: at least 30 % of the 80–8000 Hz power lies in the 300–3400 Hz
 *   speech band and the spectral flatness of that band is at most 0.3 (noise is flat, voiced
 *   speech has harmonics). The floor drops at once to a quieter frame and rises 3 dB/s through
 *   non-speech (0.5 dB/s through speech). A segment runs from the first speech frame to 200 ms
 *   after the last (hangover); segments are half-open `[start, end)` in session ms, and one that
 *   runs across a window edge is cut there (`[…, t_ms]` then `[t_ms, …]`).
 * - `level_dbfs`: the power mean (RMS, full scale = 1.0) of the window's speech frames, or of
 *   all its frames when it has none (a quiet room reads low); -160 for digital silence.
 * - `motion`: percent of pixels (0–100) whose luma changed by more than 12/255 between
 *   consecutive analysed camera frames (new frames only, at most 15 a second) on a 160×120
 *   grayscale image (2×2 means of the camera's luma plane, or a canvas where VideoFrame is
 *   missing, then a [1 2 1] blur), averaged over the last 0.5 s, then over the window's
 *   unfrozen frames (0 when there were none).
 * - `frozen`: the camera delivered no new frame for more than 1 s, or its track is missing,
 *   ended, muted or disabled, for at least half of the window's frames. It is NOT "identical
 *   pixels": a perfectly still picture that keeps arriving is still (motion 0), not frozen — the
 *   engine tells a still client (low motion) from a camera that is gone (frozen). No camera
 *   (audio only, or camera turned off) also reads as frozen: there is no picture to read
 *   stillness from, and the engine then ignores `motion`.
 * - `video_off`: video is off by choice — this side or the other chose
 *   audio only, or this camera is switched off. The engine then never reads the missing
 *   picture as frozen or degraded video.
 * - `frame_present`: true/false from the browser's FaceDetector (Shape Detection API, about
 *   once a second on the camera frame) where one exists; null where none exists (most desktop
 *   browsers) and whenever the camera is frozen.
 * - `net` (only when a peer connection is given): the stream this browser RECEIVES, from
 *   `pc.getStats()`: selected candidate pair RTT, inbound audio jitter, inbound loss fraction,
 *   frames decoded and freezes started (the last three as deltas over the window; fields that
 *   cannot be measured yet are left out). Frames and freezes are the other person's camera
 *   only: a shared screen (screenshare.js) comes on a later video m-line and is left out.
 *
 * `stop()` clears the timer, closes the audio graph and releases the video element and
 * buffers; nothing is sent after it returns (the consent-withdrawal path relies on this). The
 * caller's tracks stay live. `busyMs` is the main-thread time the audio and video analysis has
 * taken (for measuring its cost; the CPU test reads it). If the caller replaces a track
 * (device switch), stop and start a new stream.
 */

/** Analysis rate: one audio and one video frame per tick. */
export const TICK_MS = 1000 / 15;
export const HANGOVER_MS = 200;
export const MIN_WINDOW_MS = 200;
export const MAX_WINDOW_MS = 5000;
export const MAX_SEGMENTS = 50;
export const SILENCE_DBFS = -160;
export const CANVAS_WIDTH = 160;
export const CANVAS_HEIGHT = 120;
/** Blurred luma steps (of 255) a pixel must change by to count as moved. */
export const CHANGE_THRESHOLD = 12;
export const MOTION_SMOOTHING_MS = 500;
/** No new camera frame for this long means the camera is frozen. */
export const FROZEN_AFTER_MS = 1000;

const FFT_SIZE = 2048;
const SNR_DB = 10;
const ABS_MIN_SPEECH_DBFS = -55;
const FLOOR_RISE_DB_PER_S = 3;
const FLOOR_RISE_IN_SPEECH_DB_PER_S = 0.5;
const SPEECH_BAND_HZ = [300, 3400];
const ANALYSIS_BAND_HZ = [80, 8000];
const MIN_SPEECH_BAND_SHARE = 0.3;
const MAX_SPEECH_FLATNESS = 0.3;
const LOWEST_BIN_DB = -200; // -Infinity bins (exact zeros) count as this in the log mean
const FACE_EVERY_MS = 1000;
const SMOOTHING_SLOTS = 16; // > 0.5 s of frames at 15 Hz
const MAX_NET_MS = 60_000;
const MAX_NET_FRAMES = 1000;

/** @typedef {"therapist" | "client"} Role */

/**
 * Connection stats of the stream this browser receives (docs/cues.md §1, `net`).
 * @typedef {object} NetStats
 * @property {number} [rtt_ms]
 * @property {number} [jitter_ms]
 * @property {number} [loss]
 * @property {number} [frames_decoded]
 * @property {number} [frames_frozen]
 */

/**
 * The `features` message, exactly the documented fields.
 * @typedef {object} FeaturesMessage
 * @property {"features"} type
 * @property {Role} role
 * @property {number} t_ms
 * @property {number} window_ms
 * @property {Array<[number, number]>} voiced
 * @property {number} level_dbfs
 * @property {number} motion
 * @property {boolean | null} frame_present
 * @property {boolean} frozen
 * @property {boolean} video_off  video is off by choice (audio only, or camera switched off)
 * @property {NetStats} [net]
 */

/**
 * @typedef {object} FeatureStreamOptions
 * @property {MediaStream} stream  the LOCAL camera and microphone
 * @property {RTCPeerConnection | null} [pc]  the call, for `net`; omit for no `net`
 * @property {Role} role  whose microphone and camera these are
 * @property {(message: FeaturesMessage) => void} send
 * @property {number} [intervalMs]  window length, 200–5000 (default 1000)
 * @property {() => number} [clock]  milliseconds, monotonic (default performance.now)
 * @property {number} [clockOriginMs]  the clock() reading that is session time 0
 * @property {() => boolean} [videoOff]  whether video is off by choice right now (audio only
 *   on either side, or this camera switched off): the engine then reads no frozen picture
 */

/**
 * @typedef {object} FeatureStream
 * @property {() => void} stop  ends the analysis; nothing is sent after it returns
 * @property {number} busyMs  main-thread time the analysis has taken so far, in ms
 */

/**
 * Start analysing `stream` and sending a `features` message about once per `intervalMs`.
 * @param {FeatureStreamOptions} options
 * @returns {FeatureStream}
 */
export function startFeatureStream({
  stream,
  pc = null,
  role,
  send,
  intervalMs = 1000,
  clock = () => performance.now(),
  clockOriginMs,
  videoOff = () => false,
}) {
  if (role !== "therapist" && role !== "client") throw new RangeError(`unknown role ${role}`);
  if (!(intervalMs >= MIN_WINDOW_MS && intervalMs <= MAX_WINDOW_MS)) {
    throw new RangeError(`intervalMs must be ${MIN_WINDOW_MS}–${MAX_WINDOW_MS}, got ${intervalMs}`);
  }
  const origin = clockOriginMs ?? clock();
  const sessionNow = () => Math.round(clock() - origin);
  const [audioTrack] = stream.getAudioTracks();
  const [videoTrack] = stream.getVideoTracks();
  const voice = audioTrack ? new VoiceAnalyser(audioTrack) : null;
  let busyMs = 0;
  const chargeBusy = (/** @type {number} */ milliseconds) => {
    busyMs += milliseconds;
  };
  const camera = new CameraAnalyser(videoTrack ?? null, chargeBusy);
  const net = pc ? new NetSampler(pc) : null;
  let windowStart = Math.max(0, sessionNow());
  let stopped = false;
  /** @type {Promise<void>} */
  let sending = Promise.resolve(); // keeps messages in order while getStats is pending

  /** @param {FeaturesMessage} message */
  const deliver = (message) => {
    if (stopped) return;
    try {
      send(message);
    } catch (error) {
      reportError(error); // a failing sender must not end the analysis
    }
  };

  const tick = () => {
    const began = performance.now();
    try {
      analyse();
    } finally {
      busyMs += performance.now() - began;
    }
  };
  const analyse = () => {
    const now = sessionNow();
    voice?.analyse(now);
    camera.analyse(now);
    if (now - windowStart < intervalMs) return;
    const start = Math.max(windowStart, now - MAX_WINDOW_MS);
    windowStart = now;
    const speech = voice ? voice.takeWindow(start, now) : { voiced: [], levelDbfs: SILENCE_DBFS };
    const picture = camera.takeWindow();
    /** @type {FeaturesMessage} */
    const message = {
      type: "features",
      role,
      t_ms: now,
      window_ms: now - start,
      voiced: speech.voiced,
      level_dbfs: speech.levelDbfs,
      motion: picture.motion,
      frame_present: picture.framePresent,
      frozen: picture.frozen,
      video_off: videoOff(),
    };
    if (!net) {
      deliver(message);
      return;
    }
    sending = sending.then(async () => {
      try {
        const stats = await net.sample();
        if (stats) message.net = stats;
      } catch (error) {
        reportError(error); // the message still goes, without `net`
      }
      deliver(message);
    });
  };
  const timer = setInterval(tick, TICK_MS);

  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      voice?.close();
      camera.close();
    },
    get busyMs() {
      return busyMs;
    },
  };
}

/**
 * Voiced segments from per-frame speech decisions, with the hangover, cut into windows.
 * Pure bookkeeping on integer session milliseconds (no clock, no audio).
 */
export class SpeechSegments {
  /** @param {number} [hangoverMs] */
  constructor(hangoverMs = HANGOVER_MS) {
    this.hangoverMs = hangoverMs;
    this.openStart = -1; // start of the running segment, -1 when none
    this.openUntil = -1; // the running segment ends here unless speech continues
    this.lastEnd = 0;
    /** @type {number[]} closed segments as start, end, start, end, … */
    this.closed = [];
  }

  /**
   * One speech decision for the frame analysed at session time `t`.
   * @param {number} t
   * @param {boolean} speech
   */
  frame(t, speech) {
    if (speech) {
      if (this.openStart < 0) this.openStart = Math.max(t, this.lastEnd);
      this.openUntil = t + this.hangoverMs;
    } else if (this.openStart >= 0 && t >= this.openUntil) {
      this.closed.push(this.openStart, this.openUntil);
      this.lastEnd = this.openUntil;
      this.openStart = -1;
    }
  }

  /**
   * The segments inside `[start, end]`; a segment still running at `end` is cut there and
   * continues from `end` in the next window.
   * @param {number} start
   * @param {number} end
   * @returns {Array<[number, number]>}
   */
  cut(start, end) {
    /** @type {Array<[number, number]>} */
    const segments = [];
    /** @type {number[]} */
    const later = [];
    const closed = this.closed;
    for (let i = 0; i < closed.length; i += 2) {
      pushClipped(segments, closed[i], closed[i + 1], start, end);
      if (closed[i + 1] > end) later.push(Math.max(closed[i], end), closed[i + 1]);
    }
    this.closed = later;
    if (this.openStart >= 0) {
      pushClipped(segments, this.openStart, end, start, end);
      this.openStart = Math.max(this.openStart, end);
    }
    if (segments.length > MAX_SEGMENTS) {
      // Only possible with very long windows: fold the tail into the last allowed segment.
      segments[MAX_SEGMENTS - 1][1] = segments[segments.length - 1][1];
      segments.length = MAX_SEGMENTS;
    }
    return segments;
  }
}

/**
 * @param {Array<[number, number]>} segments
 * @param {number} from
 * @param {number} to
 * @param {number} start
 * @param {number} end
 */
function pushClipped(segments, from, to, start, end) {
  const s = Math.max(from, start);
  const e = Math.min(to, end);
  if (s < e) segments.push([s, e]);
}

/** Energy + spectral voice activity detection on the local microphone. */
class VoiceAnalyser {
  /** @param {MediaStreamTrack} track */
  constructor(track) {
    // "playback": larger render quanta, fewer wake-ups; nothing is played, so latency is moot.
    this.context = new AudioContext({ latencyHint: "playback" });
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
    this.source = this.context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = FFT_SIZE;
    this.analyser.smoothingTimeConstant = 0;
    // Not connected to the destination: an AnalyserNode is pulled without it, and the
    // microphone must not play back.
    this.source.connect(this.analyser);
    this.samples = new Float32Array(FFT_SIZE);
    this.spectrum = new Float32Array(FFT_SIZE / 2);
    const binHz = this.context.sampleRate / FFT_SIZE;
    const lastBin = FFT_SIZE / 2 - 1;
    this.analysisBins = [
      Math.ceil(ANALYSIS_BAND_HZ[0] / binHz),
      Math.min(lastBin, Math.floor(ANALYSIS_BAND_HZ[1] / binHz)),
    ];
    this.speechBins = [
      Math.ceil(SPEECH_BAND_HZ[0] / binHz),
      Math.min(lastBin, Math.floor(SPEECH_BAND_HZ[1] / binHz)),
    ];
    this.segments = new SpeechSegments();
    this.floorDbfs = NaN; // set from the first frame
    this.lastT = NaN;
    this.powerSum = 0;
    this.frames = 0;
    this.speechPowerSum = 0;
    this.speechFrames = 0;
  }

  /** @param {number} t  session ms */
  analyse(t) {
    const samples = this.samples;
    this.analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    const power = sum / samples.length;
    const dbfs = power > 0 ? Math.max(SILENCE_DBFS, 10 * Math.log10(power)) : SILENCE_DBFS;
    const floor = Number.isNaN(this.floorDbfs) ? dbfs : this.floorDbfs;
    const speech =
      dbfs >= floor + SNR_DB && dbfs >= ABS_MIN_SPEECH_DBFS && this.spectrumLooksLikeVoice();
    const seconds = Number.isNaN(this.lastT) ? 0 : (t - this.lastT) / 1000;
    const rise = (speech ? FLOOR_RISE_IN_SPEECH_DB_PER_S : FLOOR_RISE_DB_PER_S) * seconds;
    this.floorDbfs = dbfs < floor ? dbfs : Math.min(dbfs, floor + rise);
    this.lastT = t;
    this.segments.frame(t, speech);
    this.powerSum += power;
    this.frames += 1;
    if (speech) {
      this.speechPowerSum += power;
      this.speechFrames += 1;
    }
  }

  /** Share of power in the speech band and that band's flatness (harmonics vs noise). */
  spectrumLooksLikeVoice() {
    const spectrum = this.spectrum;
    this.analyser.getFloatFrequencyData(spectrum);
    const [first, last] = this.analysisBins;
    const [speechFirst, speechLast] = this.speechBins;
    let total = 0;
    let band = 0;
    let logSum = 0;
    for (let i = first; i <= last; i++) {
      const db = spectrum[i] > LOWEST_BIN_DB ? spectrum[i] : LOWEST_BIN_DB;
      const binPower = 10 ** (db / 10);
      total += binPower;
      if (i >= speechFirst && i <= speechLast) {
        band += binPower;
        logSum += db;
      }
    }
    if (band <= 0 || total <= 0) return false;
    const bins = speechLast - speechFirst + 1;
    const geometricMean = 10 ** (logSum / bins / 10);
    const flatness = geometricMean / (band / bins);
    return band / total >= MIN_SPEECH_BAND_SHARE && flatness <= MAX_SPEECH_FLATNESS;
  }

  /**
   * The window's voiced segments and voice level; resets the level accumulators.
   * @param {number} start
   * @param {number} end
   */
  takeWindow(start, end) {
    const voiced = this.segments.cut(start, end);
    const [sum, count] =
      this.speechFrames > 0 ? [this.speechPowerSum, this.speechFrames] : [this.powerSum, this.frames];
    const mean = count > 0 ? sum / count : 0;
    const levelDbfs = mean > 0 ? clamp(10 * Math.log10(mean), SILENCE_DBFS, 0) : SILENCE_DBFS;
    this.powerSum = this.speechPowerSum = 0;
    this.frames = this.speechFrames = 0;
    return { voiced, levelDbfs: Math.round(levelDbfs * 10) / 10 };
  }

  close() {
    this.source.disconnect();
    this.analyser.disconnect();
    this.context.close().catch(() => {});
  }
}

/**
 * @param {number} width
 * @param {number} height
 * @returns {OffscreenCanvas | HTMLCanvasElement}
 */
function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas"); // detached: never inserted
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

/**
 * @typedef {object} FaceDetectorLike
 * @property {(image: HTMLVideoElement) => Promise<unknown[]>} detect
 */

/** @returns {FaceDetectorLike | null} the Shape Detection API's detector, where there is one */
function makeFaceDetector() {
  // The Shape Detection API (FaceDetector, Chromium behind a flag) has no TypeScript DOM types.
  const Detector = /** @type {{FaceDetector?: new (options: object) => FaceDetectorLike}} */ (
    /** @type {unknown} */ (globalThis)
  ).FaceDetector;
  if (typeof Detector !== "function") return null;
  try {
    return new Detector({ fastMode: true, maxDetectedFaces: 1 });
  } catch {
    return null;
  }
}

/** VideoFrame formats whose first plane is 8-bit luma. */
const LUMA_FIRST_FORMATS = new Set(["I420", "I420A", "I422", "I422A", "I444", "I444A", "NV12"]);
/** VideoFrame formats of 4-byte pixels: the byte offsets of R, G and B. */
const RGB_OFFSETS = new Map([
  ["RGBA", [0, 1, 2]],
  ["RGBX", [0, 1, 2]],
  ["BGRA", [2, 1, 0]],
  ["BGRX", [2, 1, 0]],
]);

/**
 * Motion energy, frozen camera and (where possible) face presence from the local camera.
 *
 * Frames are read as a VideoFrame copied into a reused buffer (the camera's own luma plane,
 * no colour conversion: about a fifth of the cost of drawing a 640×480 video onto a canvas);
 * browsers without VideoFrame, or frames in other formats, go through a 160×120 canvas.
 */
class CameraAnalyser {
  /**
   * @param {MediaStreamTrack | null} track
   * @param {(milliseconds: number) => void} chargeBusy  adds main-thread time spent off-tick
   */
  constructor(track, chargeBusy) {
    this.track = track;
    this.chargeBusy = chargeBusy;
    this.closed = false;
    /** @type {HTMLVideoElement | null} */
    this.video = null;
    if (track) {
      const video = document.createElement("video"); // detached: never inserted
      video.muted = true;
      video.playsInline = true;
      video.srcObject = new MediaStream([track]);
      video.play().catch(() => {}); // a refused play shows up as no frames, i.e. frozen
      this.video = video;
    }
    this.useVideoFrame = typeof VideoFrame === "function";
    /** @type {Uint8Array} */
    this.frameBuffer = new Uint8Array(0);
    this.reading = false;
    /** @type {OffscreenCanvas | HTMLCanvasElement | null} */
    this.canvas = null; // the fallback path's, made on first use
    const pixels = CANVAS_WIDTH * CANVAS_HEIGHT;
    this.columns = new Int32Array(CANVAS_WIDTH); // source column of each canvas column
    this.rows = new Int32Array(CANVAS_HEIGHT); // source row of each canvas row
    this.geometry = ""; // the source size and layout the tables were made for
    this.luma = new Uint8Array(pixels);
    this.rowBlur = new Uint16Array(pixels);
    this.current = new Uint8Array(pixels);
    this.previous = new Uint8Array(pixels);
    this.hasPrevious = false;
    this.lastCount = -1;
    this.lastNewFrameT = NaN;
    this.smoothT = new Float64Array(SMOOTHING_SLOTS).fill(-Infinity);
    this.smoothValue = new Float64Array(SMOOTHING_SLOTS);
    this.smoothNext = 0;
    this.motionSum = 0;
    this.motionFrames = 0;
    this.frames = 0;
    this.frozenFrames = 0;
    this.faceDetector = track ? makeFaceDetector() : null;
    this.faceBusy = false;
    this.lastFaceT = -Infinity;
    this.facesSeen = 0;
    this.faceChecks = 0;
  }

  /**
   * Frames the camera has delivered so far; null when the browser cannot tell.
   * @param {MediaStreamTrack} track
   * @param {HTMLVideoElement} video
   */
  static frameCount(track, video) {
    // MediaStreamTrack.stats (Chromium 120+) is not in TypeScript's DOM types yet.
    const stats = /** @type {{stats?: {totalFrames?: unknown}}} */ (/** @type {unknown} */ (track)).stats;
    if (stats && typeof stats.totalFrames === "number") return stats.totalFrames;
    if (typeof video.getVideoPlaybackQuality === "function") {
      return video.getVideoPlaybackQuality().totalVideoFrames;
    }
    return null;
  }

  /** @param {number} t  session ms */
  analyse(t) {
    this.frames += 1;
    const { track, video } = this;
    if (Number.isNaN(this.lastNewFrameT)) this.lastNewFrameT = t;
    let fresh = true;
    let stalled = false;
    if (track && video) {
      const count = CameraAnalyser.frameCount(track, video);
      if (count !== null) {
        fresh = count !== this.lastCount;
        if (fresh) {
          this.lastCount = count;
          this.lastNewFrameT = t;
        }
        stalled = t - this.lastNewFrameT > FROZEN_AFTER_MS;
      }
    }
    const live = track !== null && track.readyState === "live" && !track.muted && track.enabled;
    if (!live || stalled || !video) {
      this.frozenFrames += 1;
      this.hasPrevious = false; // after a gap, the next frame starts afresh
      return;
    }
    if (fresh && !this.reading && video.readyState >= video.HAVE_CURRENT_DATA) {
      this.readFrame(t, video);
      this.maybeDetectFace(t, video);
    }
    this.motionSum += this.smoothedMotion(t);
    this.motionFrames += 1;
  }

  /**
   * Sample the current frame's luma into `this.luma`, then compare it with the last one.
   * @param {number} t
   * @param {HTMLVideoElement} video
   */
  readFrame(t, video) {
    if (this.useVideoFrame) {
      /** @type {VideoFrame} */
      let frame;
      try {
        frame = new VideoFrame(video);
      } catch {
        return; // no frame to read yet
      }
      const format = frame.format ?? "";
      if (LUMA_FIRST_FORMATS.has(format) || RGB_OFFSETS.has(format)) {
        this.readVideoFrame(t, frame, format);
        return;
      }
      frame.close();
      this.useVideoFrame = false; // opaque or high bit depth: use the canvas from now on
    }
    if (this.readCanvas(video)) this.compare(t);
  }

  /**
   * @param {number} t
   * @param {VideoFrame} frame
   * @param {string} format
   */
  readVideoFrame(t, frame, format) {
    const size = frame.allocationSize();
    if (this.frameBuffer.length !== size) this.frameBuffer = new Uint8Array(size);
    const buffer = this.frameBuffer;
    const { width, height } = /** @type {DOMRectReadOnly} */ (frame.visibleRect);
    this.reading = true;
    frame
      .copyTo(buffer)
      .then((layout) => {
        if (this.closed) return;
        const began = performance.now();
        this.sampleLuma(buffer, layout[0], width, height, RGB_OFFSETS.get(format) ?? null);
        this.compare(t);
        this.chargeBusy(performance.now() - began);
      })
      .catch(() => {
        this.useVideoFrame = false;
      })
      .finally(() => {
        frame.close();
        this.reading = false;
      });
  }

  /**
   * Down-sample the first plane to 160×120: each pixel the mean of a 2×2 block (luma planes)
   * or one pixel's BT.601 luma (RGB formats).
   * @param {Uint8Array} buffer
   * @param {PlaneLayout} plane
   * @param {number} width
   * @param {number} height
   * @param {number[] | null} rgb  byte offsets of R, G, B in a 4-byte pixel; null for luma
   */
  sampleLuma(buffer, plane, width, height, rgb) {
    const bytesPerPixel = rgb ? 4 : 1;
    const geometry = `${width}x${height}/${plane.offset}/${plane.stride}/${bytesPerPixel}`;
    const { columns, rows, luma } = this;
    if (geometry !== this.geometry) {
      this.geometry = geometry;
      for (let x = 0; x < CANVAS_WIDTH; x++) {
        const source = Math.floor(((x + 0.5) * width) / CANVAS_WIDTH - 0.5);
        columns[x] = clamp(source, 0, Math.max(0, width - 2)) * bytesPerPixel;
      }
      for (let y = 0; y < CANVAS_HEIGHT; y++) {
        const source = Math.floor(((y + 0.5) * height) / CANVAS_HEIGHT - 0.5);
        rows[y] = plane.offset + clamp(source, 0, Math.max(0, height - 2)) * plane.stride;
      }
    }
    const stride = plane.stride;
    if (rgb === null) {
      const right = width > 1 ? 1 : 0;
      const down = height > 1 ? stride : 0;
      for (let y = 0, i = 0; y < CANVAS_HEIGHT; y++) {
        const row = rows[y];
        for (let x = 0; x < CANVAS_WIDTH; x++, i++) {
          const p = row + columns[x];
          luma[i] = (buffer[p] + buffer[p + right] + buffer[p + down] + buffer[p + down + right]) >> 2;
        }
      }
      return;
    }
    const [r, g, b] = rgb;
    for (let y = 0, i = 0; y < CANVAS_HEIGHT; y++) {
      const row = rows[y];
      for (let x = 0; x < CANVAS_WIDTH; x++, i++) {
        const p = row + columns[x];
        luma[i] = (77 * buffer[p + r] + 150 * buffer[p + g] + 29 * buffer[p + b]) >> 8;
      }
    }
  }

  /**
   * The fallback: draw the video onto a 160×120 canvas and take its BT.601 luma.
   * @param {HTMLVideoElement} video
   * @returns {boolean} whether `this.luma` holds the frame
   */
  readCanvas(video) {
    this.canvas ??= makeCanvas(CANVAS_WIDTH, CANVAS_HEIGHT);
    const context = /** @type {OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D | null} */ (
      this.canvas.getContext("2d", { willReadFrequently: true, alpha: false })
    );
    if (!context) return false;
    context.drawImage(video, 0, 0, CANVAS_WIDTH, CANVAS_HEIGHT);
    const rgba = context.getImageData(0, 0, CANVAS_WIDTH, CANVAS_HEIGHT).data;
    const luma = this.luma;
    for (let i = 0, p = 0; i < luma.length; i++, p += 4) {
      luma[i] = (77 * rgba[p] + 150 * rgba[p + 1] + 29 * rgba[p + 2]) >> 8;
    }
    return true;
  }

  /**
   * Blur `this.luma`, count the pixels that changed since the last frame, remember the
   * percentage at time `t`.
   * @param {number} t
   */
  compare(t) {
    const { luma, rowBlur, current } = this;
    const width = CANVAS_WIDTH;
    const height = CANVAS_HEIGHT;
    // Small blur: a separable [1 2 1] kernel (edges clamped), so sensor noise does not count.
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) {
        const left = luma[row + (x > 0 ? x - 1 : x)];
        const right = luma[row + (x < width - 1 ? x + 1 : x)];
        rowBlur[row + x] = left + 2 * luma[row + x] + right;
      }
    }
    for (let y = 0; y < height; y++) {
      const up = (y > 0 ? y - 1 : y) * width;
      const row = y * width;
      const down = (y < height - 1 ? y + 1 : y) * width;
      for (let x = 0; x < width; x++) {
        current[row + x] = (rowBlur[up + x] + 2 * rowBlur[row + x] + rowBlur[down + x]) >> 4;
      }
    }
    const previous = this.previous;
    const hadPrevious = this.hasPrevious;
    let changed = 0;
    if (hadPrevious) {
      for (let i = 0; i < current.length; i++) {
        const step = current[i] - previous[i];
        if (step > CHANGE_THRESHOLD || step < -CHANGE_THRESHOLD) changed += 1;
      }
    }
    this.previous = current;
    this.current = previous;
    this.hasPrevious = true;
    if (!hadPrevious) return;
    this.smoothT[this.smoothNext] = t;
    this.smoothValue[this.smoothNext] = (100 * changed) / current.length;
    this.smoothNext = (this.smoothNext + 1) % SMOOTHING_SLOTS;
  }

  /** @param {number} t  the mean frame-to-frame change over the last 0.5 s */
  smoothedMotion(t) {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < SMOOTHING_SLOTS; i++) {
      if (t - this.smoothT[i] < MOTION_SMOOTHING_MS) {
        sum += this.smoothValue[i];
        count += 1;
      }
    }
    return count > 0 ? sum / count : 0;
  }

  /**
   * At most once a second and one at a time, ask the face detector about the current frame.
   * @param {number} t
   * @param {HTMLVideoElement} video
   */
  maybeDetectFace(t, video) {
    const detector = this.faceDetector;
    if (!detector || this.faceBusy || t - this.lastFaceT < FACE_EVERY_MS) return;
    this.faceBusy = true;
    this.lastFaceT = t;
    detector
      .detect(video)
      .then((faces) => {
        if (this.closed) return;
        this.faceChecks += 1;
        if (faces.length > 0) this.facesSeen += 1;
      })
      .catch(() => {}) // a failed detection says nothing about presence
      .finally(() => {
        this.faceBusy = false;
      });
  }

  /** The window's motion, frozen flag and presence; resets the accumulators. */
  takeWindow() {
    const frozen = this.frames === 0 || this.frozenFrames * 2 >= this.frames;
    const motion = this.motionFrames > 0 ? this.motionSum / this.motionFrames : 0;
    /** @type {boolean | null} */
    let framePresent = null;
    if (!frozen && this.faceChecks > 0) framePresent = this.facesSeen > 0;
    this.frames = this.frozenFrames = this.motionFrames = 0;
    this.motionSum = 0;
    this.faceChecks = this.facesSeen = 0;
    return { motion: Math.round(clamp(motion, 0, 100) * 100) / 100, frozen, framePresent };
  }

  close() {
    this.closed = true;
    const video = this.video;
    if (video) {
      video.pause();
      video.srcObject = null;
    }
    if (this.canvas) this.canvas.width = this.canvas.height = 0; // frees the backing store now
    this.video = this.canvas = this.faceDetector = null;
    this.frameBuffer = new Uint8Array(0);
  }
}

/**
 * @typedef {object} InboundCounters
 * @property {number} lost
 * @property {number} received
 * @property {number} decoded
 * @property {number} freezes
 * @property {boolean} video
 */

/** @type {InboundCounters} a stream that appeared during the window */
const NO_COUNTS = Object.freeze({ lost: 0, received: 0, decoded: 0, freezes: 0, video: false });

/**
 * The mid of the call's first video m-line, which carries the camera (screen shares are added
 * after it), or null when mids are not numbers this can order.
 * @param {RTCPeerConnection} pc
 * @returns {string | null}
 */
export function firstVideoMid(pc) {
  let first = null;
  for (const transceiver of pc.getTransceivers()) {
    const mid = transceiver.mid;
    if (mid === null || transceiver.receiver.track.kind !== "video") continue;
    if (!/^\d+$/.test(mid)) return null;
    if (first === null || Number(mid) < Number(first)) first = mid;
  }
  return first;
}

/** Connection stats of the received stream, as deltas between successive samples. */
class NetSampler {
  /** @param {RTCPeerConnection} pc */
  constructor(pc) {
    this.pc = pc;
    /** @type {Map<string, InboundCounters> | null} */
    this.previous = null;
    // The baseline, so the first window's deltas cover only that window.
    this.ready = this.read().then(
      (reading) => {
        this.previous = reading.counters;
      },
      () => {},
    );
  }

  async read() {
    const report = await this.pc.getStats();
    /** @type {Map<string, InboundCounters>} */
    const counters = new Map();
    /** @type {number | undefined} */
    let jitterS;
    /** @type {string | undefined} */
    let selectedPairId;
    // RTCStatsReport's entries are typed `any` in TypeScript's DOM lib (each stats type has its
    // own fields); they are read defensively below, field by field.
    /** @type {any} */
    let nominatedPair;
    const cameraMid = firstVideoMid(this.pc);
    report.forEach((/** @type {any} */ s) => {
      // a shared screen arrives on a later video m-line: its frames say nothing about the face
      const screen = s.kind === "video" && cameraMid !== null && typeof s.mid === "string" && s.mid !== cameraMid;
      if (s.type === "inbound-rtp" && !screen) {
        counters.set(s.id, {
          lost: s.packetsLost ?? 0,
          received: s.packetsReceived ?? 0,
          decoded: s.kind === "video" ? s.framesDecoded ?? 0 : 0,
          freezes: s.kind === "video" ? s.freezeCount ?? 0 : 0,
          video: s.kind === "video",
        });
        if (s.kind === "audio" && typeof s.jitter === "number") {
          jitterS = Math.max(jitterS ?? 0, s.jitter);
        }
      } else if (s.type === "transport" && s.selectedCandidatePairId) {
        selectedPairId = s.selectedCandidatePairId;
      } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
        nominatedPair = s;
      }
    });
    const pair = (selectedPairId && report.get(selectedPairId)) || nominatedPair;
    /** @type {number | undefined} */
    const rttS = typeof pair?.currentRoundTripTime === "number" ? pair.currentRoundTripTime : undefined;
    return { counters, jitterS, rttS };
  }

  /** @returns {Promise<NetStats | null>} null when the connection gave no stats (closed) */
  async sample() {
    await this.ready;
    let reading;
    try {
      reading = await this.read();
    } catch {
      return null;
    }
    /** @type {NetStats} */
    const stats = {};
    if (reading.rttS !== undefined) stats.rtt_ms = roundTo(clamp(reading.rttS * 1000, 0, MAX_NET_MS), 1);
    if (reading.jitterS !== undefined) {
      stats.jitter_ms = roundTo(clamp(reading.jitterS * 1000, 0, MAX_NET_MS), 1);
    }
    const previous = this.previous;
    this.previous = reading.counters;
    if (previous === null || reading.counters.size === 0) return stats;
    let lost = 0;
    let received = 0;
    let decoded = 0;
    let freezes = 0;
    let video = false;
    for (const [id, now] of reading.counters) {
      video ||= now.video;
      const before = previous.get(id) ?? NO_COUNTS;
      lost += Math.max(0, now.lost - before.lost); // duplicates can make packetsLost fall
      received += Math.max(0, now.received - before.received);
      decoded += Math.max(0, now.decoded - before.decoded);
      freezes += Math.max(0, now.freezes - before.freezes);
    }
    if (lost + received > 0) stats.loss = roundTo(lost / (lost + received), 4);
    if (video) {
      stats.frames_decoded = Math.min(decoded, MAX_NET_FRAMES);
      stats.frames_frozen = Math.min(freezes, MAX_NET_FRAMES);
    }
    return stats;
  }
}

/**
 * @param {number} value
 * @param {number} low
 * @param {number} high
 */
function clamp(value, low, high) {
  return value < low ? low : value > high ? high : value;
}

/**
 * @param {number} value
 * @param {number} decimals
 */
function roundTo(value, decimals) {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}

/** @param {unknown} error */
function reportError(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}
