//! The numbers of the protocol: frame type codes, envelope codes, close codes and limits.

/// Frame type codes (the `type` field of requests and replies, and of an envelope's `msg`).
pub mod kind {
    /// S→C reply to SEND (1) and SEND GROUP (9), once the message is durable.
    pub const RECEIVED: u16 = 0;
    /// C→S send to a user.
    pub const SEND: u16 = 1;
    /// S→C push of a 1:1 message (envelope).
    pub const DELIVER: u16 = 2;
    /// C→S heartbeat.
    pub const HEARTBEAT: u16 = 3;
    /// S→C heartbeat reply.
    pub const HEARTBEAT_ACK: u16 = 4;
    /// C→S the seeds' login frame.
    pub const REGISTER: u16 = 7;
    /// C→S create a group.
    pub const CREATE_GROUP: u16 = 8;
    /// C→S send to a group.
    pub const SEND_GROUP: u16 = 9;
    /// S→C push of a group message (envelope).
    pub const DELIVER_GROUP: u16 = 10;
    /// C→S add members to a group.
    pub const ADD_MEMBERS: u16 = 11;
    /// C→S leave a group.
    pub const LEAVE_GROUP: u16 = 12;
    /// C→S read a conversation or list conversations.
    pub const SYNC: u16 = 13;
    /// S→C reply to SYNC.
    pub const SYNC_REPLY: u16 = 14;
    /// C→S acknowledge a pushed message.
    pub const ACK: u16 = 15;
    /// S→C reply to ACK, once the ack is stored.
    pub const ACK_RECEIVED: u16 = 16;
    /// S→C a recipient acked a 1:1 message (envelope, to its sender's devices).
    pub const DELIVERED: u16 = 17;
    /// C→S the user has read a conversation up to a seq; S→C its reply (v1.1).
    pub const READ: u16 = 18;
    /// S→C a participant read a conversation up to a seq (envelope, v1.1).
    pub const READ_NOTICE: u16 = 19;
    /// S→C first frame of every connection.
    pub const WELCOME: u16 = 20;
    /// C→S renew the timelife; S→C its reply.
    pub const RENEW: u16 = 21;
    /// S→C the server is going away: reconnect elsewhere.
    pub const DRAIN: u16 = 22;
    /// S→C this connection is closed by the server (then close 4001).
    pub const KICKED: u16 = 23;
    /// C→S the user started or stopped typing in a conversation (v1.1; no reply).
    pub const TYPING: u16 = 24;
    /// S→C a participant started or stopped typing (envelope, v1.1).
    pub const TYPING_NOTICE: u16 = 25;
    /// C→S remove members from a group; S→C its reply (v1.1).
    pub const REMOVE_MEMBERS: u16 = 28;
    /// C→S rename a group; S→C its reply (v1.1).
    pub const UPDATE_GROUP: u16 = 29;
    /// C→S dissolve a group; S→C its reply (v1.1).
    pub const DISSOLVE_GROUP: u16 = 30;
    /// C→S set a member's role; S→C its reply (v1.1).
    pub const SET_ROLE: u16 = 31;
    /// C→S recall one's own message; S→C its reply (v1.1).
    pub const RECALL: u16 = 32;
    /// S→C a message was recalled (envelope, v1.1).
    pub const RECALLED: u16 = 33;
    /// C→S subscribe to some users' presence (replaces the connection's set); S→C its reply
    /// with their presence now (v1.1).
    pub const SUBSCRIBE_PRESENCE: u16 = 26;
    /// S→C a subscribed user's first device connected or last device left (envelope, v1.1).
    pub const PRESENCE: u16 = 27;
    /// C→S block a user; S→C its reply (v1.1).
    pub const BLOCK: u16 = 34;
    /// C→S unblock a user; S→C its reply (v1.1).
    pub const UNBLOCK: u16 = 35;
    /// S→C an error answering a request.
    pub const ERROR: u16 = 500;
}

/// Envelope `msgType` values (seed 002).
pub mod msg_type {
    /// A business message: every push the server makes.
    pub const BUSINESS: i32 = 1;
}

/// Envelope `trigger` values: what caused the push.
pub mod trigger {
    /// A WebSocket request (2, 10, 17).
    pub const WEBSOCKET: i32 = 1;
    /// The HTTP push API (`/message/send`).
    pub const HTTP: i32 = 2;
}

/// WebSocket close codes the server uses.
pub mod close {
    /// After REGISTER with `loginStatus: "0"`.
    pub const NORMAL: u16 = 1000;
    /// A WebSocket protocol violation.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A binary frame was received.
    pub const UNSUPPORTED: u16 = 1003;
    /// A text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame over [`super::limits::MAX_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// The drain deadline was reached.
    pub const SERVICE_RESTART: u16 = 1012;
    /// The client stopped reading: a write waited past the server's write timeout (its queue
    /// was full). Reconnect; what was stored comes back by catch-up.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// No frame for three heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// After KICKED (23).
    pub const KICKED: u16 = 4001;
    /// The timelife ended without RENEW.
    pub const TIMELIFE_EXPIRED: u16 = 4002;
}

/// Sizes and counts the server enforces.
pub mod limits {
    /// Largest text frame accepted, the seeds' HTTP aggregator size. Larger frames close with 1009.
    pub const MAX_FRAME_BYTES: usize = 64 * 1024;
    /// Most messages one SYNC returns.
    pub const MAX_SYNC_LIMIT: u32 = 200;
    /// Longest accepted `clientMsgId`.
    pub const MAX_CLIENT_MSG_ID: usize = 64;
    /// Longest accepted group name, in characters.
    pub const MAX_GROUP_NAME: usize = 128;
    /// Most members one CREATE GROUP / ADD MEMBERS may name.
    pub const MAX_GROUP_MEMBERS: usize = 1000;
    /// Longest user, group or message id, in bytes.
    pub const MAX_ID_BYTES: usize = 128;
    /// Longest device id, in bytes (of `[A-Za-z0-9._-]`).
    pub const MAX_DEVICE_BYTES: usize = 64;
    /// Longest display name REGISTER accepts, in bytes.
    pub const MAX_USER_NAME_BYTES: usize = 128;
    /// TYPING frames per conversation per second a connection passes on; more are dropped.
    pub const TYPING_PER_SECOND: u32 = 1;
    /// Longest `file.fileId` SEND accepts, in bytes (of `[A-Za-z0-9._-]`).
    pub const MAX_FILE_ID: usize = 64;
    /// Most users one SUBSCRIBE PRESENCE may name.
    pub const MAX_PRESENCE_USERS: usize = 500;
}
