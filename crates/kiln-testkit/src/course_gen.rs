//! course_gen (to be written).
