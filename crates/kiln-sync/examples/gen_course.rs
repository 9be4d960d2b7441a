//! The course generator as a command, for benchmarks:
//! `gen_course DIR QUESTIONS [--bare] [--files N] [--size BYTES] [--seed S] [--dir]` writes a
//! course (a git repository with history, or with `--dir` a plain directory);
//! `gen_course DIR QUESTIONS --change I --round R` commits a change to question I.

use kiln_testkit::course_gen::{CourseSpec, commit_question_change, write_dir, write_git};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: gen_course DIR QUESTIONS [--bare] [--dir] [--files N] [--size BYTES] [--seed S] [--change I --round R]";
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or(usage)?);
    let mut spec = CourseSpec::new(args.next().ok_or(usage)?.parse()?);
    let (mut bare, mut plain, mut change, mut round) = (false, false, None, 1u64);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--bare" => bare = true,
            "--dir" => plain = true,
            "--files" => spec.files_per_question = args.next().ok_or(usage)?.parse()?,
            "--size" => spec.file_size = args.next().ok_or(usage)?.parse()?,
            "--seed" => spec.seed = args.next().ok_or(usage)?.parse()?,
            "--change" => change = Some(args.next().ok_or(usage)?.parse::<usize>()?),
            "--round" => round = args.next().ok_or(usage)?.parse()?,
            _ => return Err(usage.into()),
        }
    }
    let head = match change {
        Some(i) => commit_question_change(&spec, &dir, i, round)?,
        None if plain => {
            write_dir(&spec, &dir)?;
            String::from("(directory)")
        }
        None => write_git(&spec, &dir, bare)?,
    };
    println!("{head}");
    Ok(())
}
