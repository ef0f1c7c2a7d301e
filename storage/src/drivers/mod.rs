//! Native drivers (being written).
