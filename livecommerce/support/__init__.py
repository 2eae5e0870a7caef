"""Customer service: WeChat message push, automatic replies, the quota ledger, human agents."""
