// @ts-check
// GENERATED from server/core/protocol/ by
//   python -m server.core.protocol.js_types --write
// Do not edit: change the Python protocol and regenerate (a test compares the two).

/** The protocol version this contract describes; `hello.version` must equal it. */
export const PROTOCOL_VERSION = 1;

/** WebSocket close codes: the standard ones the protocol uses, and its own. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
  REPLACED: 4001,
  RESUMED_ELSEWHERE: 4002,
  DENIED: 4003,
  SESSION_ENDED: 4004,
  HANDSHAKE_FAILED: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  IDLE_TIMEOUT: 4408,
  CONSENT_REQUIRED: 4412,
  TOO_MANY_MESSAGES: 4429,
});

/** Why access ended: the close reason the server sends with 4401, 4403 and 4429. */
export const AccessEnd = Object.freeze({
  SIGNED_OUT: "signed-out",
  ACCOUNT_DISABLED: "account-disabled",
  PASSWORD_CHANGED: "password-changed",
  LINK_REVOKED: "link-revoked",
  LINK_REPLACED: "link-replaced",
  ANOTHER_DEVICE: "another-device",
  CONSENT_WITHDRAWN: "consent-withdrawn",
  TOO_MANY_MESSAGES: "too-many-messages",
  TOO_MANY_KNOCKS: "too-many-knocks",
});

/** After these close codes a client shows the reason and does not reconnect. */
export const NO_RECONNECT_CLOSE_CODES = Object.freeze([4001, 4002, 4003, 4004, 4400, 4401, 4403, 4404, 4412, 4429]);

/** Limits the browser keeps to (sizes in UTF-8 bytes, times in milliseconds). */
export const MAX_FRAME_BYTES = 65536;
export const MAX_FEATURES_BYTES = 8192;
export const MAX_ANSWER_TEXT_CHARS = 10000;
export const HELLO_TIMEOUT_MS = 10000;
export const PING_AFTER_IDLE_MS = 20000;
export const DROP_AFTER_IDLE_MS = 45000;

// --- server → client messages ---

/**
 * The answer to `hello`: role, where each party stands, ICE servers, consents.
 * @typedef {object} WelcomeMessage
 * @property {"welcome"} type
 * @property {"therapist" | "client"} role
 * @property {string} session_id
 * @property {string} peer_id
 * @property {number} version
 * @property {"waiting" | "in-call"} state
 * @property {"absent" | "in-call" | "reconnecting"} peer
 * @property {Array<{urls: string | Array<string>, username?: string, credential?: string}>} ice_servers
 * @property {Partial<Record<"telehealth" | "checkin_storage" | "cue_analysis" | "contact" | "research", "granted" | "withdrawn" | "never_asked" | "needs_reconsent">>} consents
 * @property {"all" | "relay"} ice_transport_policy
 * @property {number} ice_ttl_seconds
 * @property {string} [knock_id]
 * @property {string} [resume_token]
 * @property {boolean} resumed
 */

/**
 * The whole waiting list, in order of arrival.
 * @typedef {object} LobbyMessage
 * @property {"lobby"} type
 * @property {Array<LobbyEntry>} waiting
 */

/**
 * Everyone in the call (the therapist and each admitted person), in admission order:
 * @typedef {object} RosterMessage
 * @property {"roster"} type
 * @property {Array<RosterEntry>} people
 */

/**
 * To a client: you are in the call.
 * @typedef {object} AdmittedMessage
 * @property {"admitted"} type
 * @property {boolean} resumed
 */

/**
 * To a client: the therapist returned you to the waiting room.
 * @typedef {object} SentBackMessage
 * @property {"sent-back"} type
 */

/**
 * To a client: the therapist did not admit this device.
 * @typedef {object} DeniedMessage
 * @property {"denied"} type
 */

/**
 * To a waiting client: the therapist's short note (relayed, never stored).
 * @typedef {object} TherapistNoteMessage
 * @property {"therapist-note"} type
 * @property {string} text
 */

/**
 * Someone's connection in the call is new (or resumed).
 * @typedef {object} PeerJoinedMessage
 * @property {"peer-joined"} type
 * @property {"therapist" | "client"} role
 * @property {string} label
 * @property {boolean} resumed
 * @property {string} peer_id
 * @property {"therapist" | "client" | "guest"} kind
 */

/**
 * Someone left the call, or dropped and may come back.
 * @typedef {object} PeerLeftMessage
 * @property {"peer-left"} type
 * @property {"therapist" | "client"} role
 * @property {boolean} reconnecting
 * @property {string} peer_id
 * @property {"therapist" | "client" | "guest"} kind
 * @property {string} label
 */

/**
 * A safety signal: a client left with the quick exit (not a dropped connection).
 * @typedef {object} QuickExitMessage
 * @property {"quick-exit"} type
 * @property {string} label
 * @property {boolean} in_call
 */

/**
 * A safety alert from an outcome measure (PHQ-9 item 9 above "Not at all"), at once.
 * @typedef {object} MeasureAlertMessage
 * @property {"measure-alert"} type
 * @property {string} alert_id
 * @property {string} label
 * @property {string} measure
 * @property {string} reason
 * @property {string} repair
 */

/**
 * Another person's SDP or ICE, as validated, and who sent it.
 * @typedef {object} SignalRelayMessage
 * @property {"signal-relay"} type
 * @property {RelayDescription | RelayCandidate} payload
 * @property {string} from
 */

/**
 * The other party in the call started sharing its screen (the track whose stream has
 * @typedef {object} PeerScreenMessage
 * @property {"peer-screen"} type
 * @property {"therapist" | "client"} role
 * @property {boolean} sharing
 * @property {string} [stream_id]
 */

/**
 * To the call: whether the therapist lets the client share a screen (off by default).
 * @typedef {object} ScreenShareAllowedMessage
 * @property {"screen-share-allowed"} type
 * @property {boolean} allowed
 */

/**
 * To a client: show a check-in form.
 * @typedef {object} CheckinOpenMessage
 * @property {"checkin-open"} type
 * @property {string} instrument_id
 * @property {"before" | "pulse" | "after"} kind
 * @property {Record<string, unknown>} [questionnaire]
 */

/**
 * A client's check-in scored, with any alerts.
 * @typedef {object} CheckinResultMessage
 * @property {"checkin-result"} type
 * @property {string} instrument_id
 * @property {"before" | "pulse" | "after"} kind
 * @property {Record<string, unknown>} scores
 * @property {Array<{code: string, category: string, severity: string, reason: string, repair: string, items: Array<string>}>} alerts
 */

/**
 * To a client: the answers with this idempotency key are durably stored.
 * @typedef {object} CheckinAckMessage
 * @property {"checkin-ack"} type
 * @property {string} idempotency_key
 * @property {string} [ref]
 */

/**
 * A cue prompt for the therapist's private side panel.
 * @typedef {object} PromptMessage
 * @property {"prompt"} type
 * @property {{id: string, category: string, t_ms: number, severity: string, text: string, reasons: Array<Record<string, unknown>>}} prompt
 */

/**
 * The client pressed a nonverbal signal button.
 * @typedef {object} ClientSignalMessage
 * @property {"client-signal"} type
 * @property {"need-a-moment" | "that-landed" | "confused" | "slow-down" | "hard-to-hear-see"} signal
 */

/**
 * The client answered the safety check before the waiting room (or answered it again).
 * @typedef {object} SafetyCheckMessage
 * @property {"safety-check"} type
 * @property {{location: string, private: boolean, contact_name: string, contact_phone: string, code_word: string, submitted_at_ms: number}} check
 */

/**
 * The private panel so far (check-ins, prompts, signals, oldest first), sent to the
 * @typedef {object} PanelStateMessage
 * @property {"panel-state"} type
 * @property {Array<{instrument_id: string, kind: "before" | "pulse" | "after", scores: Record<string, any>, alerts: Array<{code: string, category: string, severity: string, reason: string, repair: string, items: Array<string>}>}>} checkins
 * @property {Array<{id: string, category: string, t_ms: number, severity: string, text: string, reasons: Array<Record<string, unknown>>}>} prompts
 * @property {Array<{signal: "need-a-moment" | "that-landed" | "confused" | "slow-down" | "hard-to-hear-see", at_ms: number}>} signals
 * @property {{location: string, private: boolean, contact_name: string, contact_phone: string, code_word: string, submitted_at_ms: number}} [safety]
 * @property {Array<{alert_id: string, label: string, measure: string, reason: string, repair: string}>} safety_alerts
 */

/**
 * To the therapist and the client in the call: the client's shared goals as they stand
 * @typedef {object} GoalsMessage
 * @property {"goals"} type
 * @property {Array<{id: string, text: string, status: 'active' | 'reached' | 'dropped', updated_by: 'therapist' | 'client', updated_at_ms: number}>} goals
 */

/**
 * A consent was granted or withdrawn, and takes effect now.
 * @typedef {object} ConsentChangedMessage
 * @property {"consent-changed"} type
 * @property {"telehealth" | "checkin_storage" | "cue_analysis" | "contact" | "research"} purpose
 * @property {"granted" | "withdrawn"} decision
 */

/**
 * The session is over; close 4004 follows.
 * @typedef {object} SessionEndedMessage
 * @property {"session-ended"} type
 * @property {"therapist-ended" | "consent-withdrawn" | "link-expired"} reason
 */

/**
 * The answer to `ping`.
 * @typedef {object} PongMessage
 * @property {"pong"} type
 * @property {string} [ref]
 */

/**
 * A refused message; the connection stays up.
 * @typedef {object} ErrorMessage
 * @property {"error"} type
 * @property {"too-large" | "bad-json" | "unknown-type" | "invalid" | "hello-required" | "unsupported-version" | "forbidden" | "not-admitted" | "no-peer" | "no-such-knock" | "call-full" | "consent-required" | "rate-limited" | "too-many-knocks" | "screen-share-not-allowed" | "internal"} code
 * @property {string} message
 * @property {string} [ref]
 */

/**
 * Any message the server sends.
 * @typedef {WelcomeMessage | LobbyMessage | RosterMessage | AdmittedMessage | SentBackMessage | DeniedMessage | TherapistNoteMessage | PeerJoinedMessage | PeerLeftMessage | QuickExitMessage | MeasureAlertMessage | SignalRelayMessage | PeerScreenMessage | ScreenShareAllowedMessage | CheckinOpenMessage | CheckinResultMessage | CheckinAckMessage | PromptMessage | ClientSignalMessage | SafetyCheckMessage | PanelStateMessage | GoalsMessage | ConsentChangedMessage | SessionEndedMessage | PongMessage | ErrorMessage} ServerMessage
 */

// --- client → server messages ---

/**
 * The versioned handshake: the first message on every connection.
 * @typedef {object} HelloMessage
 * @property {"hello"} type
 * @property {number} version
 * @property {string} [resume]
 * @property {string} [id]
 */

/**
 * The therapist lets a waiting knock into the call.
 * @typedef {object} AdmitMessage
 * @property {"admit"} type
 * @property {string} knock_id
 * @property {string} [id]
 */

/**
 * The therapist turns a waiting knock away.
 * @typedef {object} DenyMessage
 * @property {"deny"} type
 * @property {string} knock_id
 * @property {string} [id]
 */

/**
 * The therapist returns a person in the call to the waiting room: `peer_id` names them
 * @typedef {object} SendBackMessage
 * @property {"send-back"} type
 * @property {string} [id]
 * @property {string} [peer_id]
 */

/**
 * SDP or ICE for another person in the call: `to` names them (a peer id); it may be
 * @typedef {object} RelayMessage
 * @property {"relay"} type
 * @property {RelayDescription | RelayCandidate} payload
 * @property {string} [id]
 * @property {string} [to]
 */

/**
 * The client's answers to a check-in; acked only after the durable write.
 * @typedef {object} CheckinAnswerMessage
 * @property {"checkin-answer"} type
 * @property {string} instrument_id
 * @property {Record<string, number | string | null>} answers
 * @property {string} idempotency_key
 * @property {string} [id]
 * @property {string} [language]
 */

/**
 * The therapist opens a one-tap check-in (the pulse) on the client's screen.
 * @typedef {object} CheckinLaunchMessage
 * @property {"checkin-launch"} type
 * @property {string} instrument_id
 * @property {string} [id]
 */

/**
 * A cue-feature summary; only the envelope is checked here, the cue module checks the body.
 * @typedef {{type: "features", id?: string} & Record<string, unknown>} FeaturesMessage
 */

/**
 * A nonverbal signal button the client pressed.
 * @typedef {object} SignalMessage
 * @property {"signal"} type
 * @property {"need-a-moment" | "that-landed" | "confused" | "slow-down" | "hard-to-hear-see"} signal
 * @property {string} [id]
 */

/**
 * The client grants or withdraws a purpose from inside the session.
 * @typedef {object} ConsentMessage
 * @property {"consent"} type
 * @property {"telehealth" | "checkin_storage" | "cue_analysis" | "contact" | "research"} purpose
 * @property {"granted" | "withdrawn"} decision
 * @property {number} notice_version
 * @property {string} [id]
 */

/**
 * The therapist's answer to a cue prompt: helpful, not now, mute or snooze its category.
 * @typedef {object} PromptFeedbackMessage
 * @property {"prompt-feedback"} type
 * @property {string} prompt_id
 * @property {"helpful" | "not-now" | "mute-category" | "snooze-category"} feedback
 * @property {number} [minutes]
 * @property {string} [id]
 */

/**
 * The therapist ends the session for everyone.
 * @typedef {object} EndMessage
 * @property {"end"} type
 * @property {string} [id]
 */

/**
 * The therapist's short note to whoever is waiting ("running five minutes late").
 * @typedef {object} WaitingNoteMessage
 * @property {"waiting-note"} type
 * @property {string} text
 * @property {string} [id]
 */

/**
 * A client leaves at once; `quick-exit` tells the therapist it was a quick exit.
 * @typedef {object} LeaveMessage
 * @property {"leave"} type
 * @property {"quick-exit"} reason
 * @property {string} [id]
 */

/**
 * This side started (with the shared MediaStream's id) or stopped sharing its screen.
 * @typedef {object} ScreenShareMessage
 * @property {"screen-share"} type
 * @property {boolean} sharing
 * @property {string} [stream_id]
 * @property {string} [id]
 */

/**
 * The therapist lets the client in the call share a screen, or takes that back.
 * @typedef {object} ScreenShareAllowMessage
 * @property {"screen-share-allow"} type
 * @property {boolean} allowed
 * @property {string} [id]
 */

/**
 * Either party in the call adds a shared goal, in the client's own words.
 * @typedef {object} GoalAddMessage
 * @property {"goal-add"} type
 * @property {string} text
 * @property {string} [id]
 */

/**
 * Either party in the call rewords a shared goal.
 * @typedef {object} GoalEditMessage
 * @property {"goal-edit"} type
 * @property {string} goal_id
 * @property {string} text
 * @property {string} [id]
 */

/**
 * Either party in the call marks a goal reached or dropped, or makes it active again.
 * @typedef {object} GoalStatusMessage
 * @property {"goal-status"} type
 * @property {string} goal_id
 * @property {"active" | "reached" | "dropped"} status
 * @property {string} [id]
 */

/**
 * A keep-alive; the server answers `pong`.
 * @typedef {object} PingMessage
 * @property {"ping"} type
 * @property {string} [id]
 */

/**
 * Any message a browser may send.
 * @typedef {HelloMessage | AdmitMessage | DenyMessage | SendBackMessage | RelayMessage | CheckinAnswerMessage | CheckinLaunchMessage | FeaturesMessage | SignalMessage | ConsentMessage | PromptFeedbackMessage | EndMessage | WaitingNoteMessage | LeaveMessage | ScreenShareMessage | ScreenShareAllowMessage | GoalAddMessage | GoalEditMessage | GoalStatusMessage | PingMessage} ClientMessage
 */

// --- parts of messages ---

/**
 * One knock in the therapist's waiting list: never an IP address or a user agent.
 * @typedef {{knock_id: string, label: string, since_ms: number, kind: "therapist" | "client" | "guest", participant_id: string}} LobbyEntry
 */

/**
 * A trickled ICE candidate (RTCIceCandidateInit); `candidate: ""` ends the trickle.
 * @typedef {{kind: "candidate", candidate: {candidate: string, sdpMid?: string, sdpMLineIndex?: number, usernameFragment?: string}}} RelayCandidate
 */

/**
 * An SDP offer or answer, relayed opaquely.
 * @typedef {{kind: "description", description: {type: "offer" | "answer" | "pranswer" | "rollback", sdp: string}}} RelayDescription
 */

/**
 * One person in the call, as `roster` lists them.
 * @typedef {{peer_id: string, kind: "therapist" | "client" | "guest", label: string, order: number, present: boolean}} RosterEntry
 */

/**
 * A `relay` payload.
 * @typedef {RelayDescription | RelayCandidate} RelayPayload
 */
