//! Size and duration parsing (being written).
