//! render_cache (to be written).
