//! The provider catalog (being written).
