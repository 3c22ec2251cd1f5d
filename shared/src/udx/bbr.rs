//! BBR congestion control (filled in by the full implementation).
