"""Comment moderation: per-room rules (mutes, room mute, blocked words), WeChat's content
check of viewer comments, and the comments held for the host (docs/protocol.md, docs/api.md)."""
