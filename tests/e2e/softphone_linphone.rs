//! Real softphone calls through a node (work in progress).
