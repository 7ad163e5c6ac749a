//! SIP codec (stub; being written).
