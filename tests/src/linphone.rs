//! Driver for a real softphone (work in progress).
