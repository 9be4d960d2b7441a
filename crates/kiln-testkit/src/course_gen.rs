//! Course generator: deterministic PrairieLearn-layout courses of any size, written as a git
//! repository with history (through `git fast-import`, fast enough for 100k files) or as a
//! plain directory, plus helpers that commit a change for incremental-sync tests and benchmarks.
//!
//! Content is a mix of word-salad text (HTML, Python, JSON) and random bytes, so that zstd
//! ratios look like a real course's rather than like all-zero or all-noise files.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// The shape of a generated course.
#[derive(Debug, Clone)]
pub struct CourseSpec {
    /// Number of questions.
    pub questions: usize,
    /// Files per question, including `info.json`, `question.html`, `server.py` and the
    /// thumbnail (at least 4); the rest are data files under `clientFilesQuestion/`.
    pub files_per_question: usize,
    /// The mean size of a question's text and data files, in bytes.
    pub file_size: usize,
    /// The seed: the same spec gives byte-identical files and commits.
    pub seed: u64,
    /// Questions per topic directory (`questions/t007/q00042`); nesting like a real course.
    pub questions_per_topic: usize,
    /// Commits the course is built in (history); questions are spread over them.
    pub commits: usize,
    /// Course instances, each with assessments.
    pub course_instances: usize,
    /// Assessments per course instance.
    pub assessments_per_instance: usize,
}

impl CourseSpec {
    /// A course of `questions` questions with 10 files of ~10 kB each (~100 kB per question).
    pub fn new(questions: usize) -> Self {
        CourseSpec {
            questions,
            files_per_question: 10,
            file_size: 10_000,
            seed: 1,
            questions_per_topic: 100,
            commits: 3,
            course_instances: 2,
            assessments_per_instance: 5,
        }
    }

    /// The question id (course-relative under `questions/`) of question `i`.
    pub fn question_id(&self, i: usize) -> String {
        format!("t{:03}/q{:05}", i / self.questions_per_topic.max(1), i)
    }
}

/// One generated file.
#[derive(Debug, Clone)]
pub struct GenFile {
    /// Course-relative path.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Whether it is executable.
    pub exec: bool,
}

/// SplitMix64: tiny, fast and stable across versions of any crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        // Scramble both: SplitMix64 streams whose start states differ by a multiple of the
        // increment would be shifted copies of each other (and compress across files).
        Rng(mix(mix(seed) ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A size around `mean` (0.5x to 1.5x).
    fn size(&mut self, mean: usize) -> usize {
        mean / 2 + self.below(mean.max(1))
    }

    fn bytes(&mut self, n: usize, out: &mut Vec<u8>) {
        while out.len() + 8 <= n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        while out.len() < n {
            out.push(self.next() as u8);
        }
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const WORDS: &[&str] = &[
    "the",
    "value",
    "of",
    "compute",
    "function",
    "matrix",
    "vector",
    "answer",
    "student",
    "gradient",
    "integral",
    "derivative",
    "probability",
    "random",
    "variable",
    "expected",
    "limit",
    "series",
    "converge",
    "point",
    "curve",
    "area",
    "volume",
    "rate",
    "change",
    "params",
    "data",
    "score",
    "feedback",
    "submitted",
    "correct",
    "given",
    "find",
    "let",
    "and",
    "is",
    "a",
    "to",
    "in",
    "for",
    "with",
    "return",
    "import",
    "numpy",
    "np",
    "def",
];

fn text(rng: &mut Rng, n: usize, out: &mut Vec<u8>) {
    let mut line = 0;
    while out.len() < n {
        let w = WORDS[rng.below(WORDS.len())];
        out.extend_from_slice(w.as_bytes());
        line += w.len() + 1;
        if line > 72 {
            out.push(b'\n');
            line = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(n);
}

fn json(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn file(path: String, data: Vec<u8>) -> GenFile {
    GenFile {
        path,
        data,
        exec: false,
    }
}

/// The files of question `i` at change `round` (0 is the original; a later round changes
/// `question.html` only).
pub fn question_files(spec: &CourseSpec, i: usize, round: u64) -> Vec<GenFile> {
    let mut rng = Rng::new(spec.seed, 1_000_000 + i as u64);
    let qid = spec.question_id(i);
    let dir = format!("questions/{qid}");
    let mut out = Vec::with_capacity(spec.files_per_question);
    out.push(file(
        format!("{dir}/info.json"),
        json(&format!(
            "{{\n  \"uuid\": \"00000000-0000-4000-8000-{:012x}\",\n  \"title\": \"Generated question {i}\",\n  \"topic\": \"t{:03}\",\n  \"tags\": [\"generated\"],\n  \"type\": \"v3\"\n}}\n",
            i,
            i / spec.questions_per_topic.max(1)
        )),
    ));
    let mut html = format!("<pl-question-panel>\n<!-- round {round} -->\n<p>").into_bytes();
    let mut hrng = Rng::new(spec.seed ^ round, 2_000_000 + i as u64);
    let n = hrng.size(spec.file_size);
    text(&mut hrng, n, &mut html);
    html.extend_from_slice(b"</p>\n</pl-question-panel>\n");
    out.push(file(format!("{dir}/question.html"), html));
    let mut py = b"import random\n\n\ndef generate(data):\n    \"\"\"".to_vec();
    let n = rng.size(spec.file_size);
    text(&mut rng, n, &mut py);
    py.extend_from_slice(b"\"\"\"\n    data[\"params\"][\"a\"] = random.randint(1, 9)\n");
    out.push(file(format!("{dir}/server.py"), py));
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let n = 1_000 + rng.below(1_000);
    rng.bytes(n, &mut png);
    out.push(file(format!("{dir}/thumbnail.png"), png));
    for j in 0..spec.files_per_question.saturating_sub(4) {
        let mut data = Vec::new();
        let n = rng.size(spec.file_size * 5 / 4);
        // Half text, half noise: a zstd ratio of about 2, like course content with images.
        text(&mut rng, n / 2, &mut data);
        rng.bytes(n, &mut data);
        out.push(file(
            format!("{dir}/clientFilesQuestion/data{j:02}.bin"),
            data,
        ));
    }
    out
}

/// The course-wide files: `infoCourse.json`, elements, client/server files, instances and
/// assessments.
pub fn course_files(spec: &CourseSpec) -> Vec<GenFile> {
    let mut rng = Rng::new(spec.seed, 7);
    let mut out = Vec::new();
    let blob = |rng: &mut Rng, mean: usize| {
        let mut v = Vec::new();
        let n = rng.size(mean);
        text(rng, n / 2, &mut v);
        rng.bytes(n, &mut v);
        v
    };
    out.push(file(
        "infoCourse.json".into(),
        json("{\n  \"uuid\": \"11111111-2222-4333-8444-555555555555\",\n  \"name\": \"GEN 100\",\n  \"title\": \"Generated course\",\n  \"topics\": []\n}\n"),
    ));
    out.push(file("README.md".into(), b"# Generated course\n".to_vec()));
    out.push(file(
        "elements/gen-plot/info.json".into(),
        json("{\"controller\": \"gen-plot.py\"}\n"),
    ));
    let mut py = Vec::new();
    text(&mut rng, 4_000, &mut py);
    out.push(file("elements/gen-plot/gen-plot.py".into(), py));
    out.push(file(
        "elements/gen-plot/gen-plot.js".into(),
        blob(&mut rng, 8_000),
    ));
    out.push(file(
        "elementExtensions/pl-number-input/units/units.py".into(),
        b"PREFIXES = {\"k\": 1e3}\n".to_vec(),
    ));
    out.push(file(
        "clientFilesCourse/style.css".into(),
        b"body { margin: 0; }\n".to_vec(),
    ));
    out.push(file(
        "clientFilesCourse/logo.bin".into(),
        blob(&mut rng, 50_000),
    ));
    out.push(file(
        "serverFilesCourse/util.py".into(),
        b"def clamp(x):\n    return x\n".to_vec(),
    ));
    out.push(GenFile {
        path: "serverFilesCourse/bin/check.sh".into(),
        data: b"#!/bin/sh\nexit 0\n".to_vec(),
        exec: true,
    });
    for c in 0..spec.course_instances {
        let ci = format!("courseInstances/ci{c:02}");
        out.push(file(
            format!("{ci}/infoCourseInstance.json"),
            json(&format!("{{\"uuid\": \"22222222-0000-4000-8000-{c:012}\", \"longName\": \"Instance {c}\"}}\n")),
        ));
        out.push(file(
            format!("{ci}/clientFilesCourseInstance/syllabus.html"),
            blob(&mut rng, 5_000),
        ));
        out.push(file(
            format!("{ci}/serverFilesCourseInstance/grading.py"),
            b"CUTOFF = 90\n".to_vec(),
        ));
        for a in 0..spec.assessments_per_instance {
            let ad = format!("{ci}/assessments/hw{a:02}");
            let q = spec.question_id(a % spec.questions.max(1));
            out.push(file(
                format!("{ad}/infoAssessment.json"),
                json(&format!(
                    "{{\"uuid\": \"33333333-0000-4000-8000-{c:06}{a:06}\", \"type\": \"Homework\", \"title\": \"HW {a}\", \"zones\": [{{\"questions\": [{{\"id\": \"{q}\"}}]}}]}}\n"
                )),
            ));
            out.push(file(
                format!("{ad}/clientFilesAssessment/notes.md"),
                blob(&mut rng, 2_000),
            ));
        }
    }
    out
}

/// Writes the whole course as a plain directory at `dir`.
pub fn write_dir(spec: &CourseSpec, dir: &Path) -> io::Result<()> {
    let write = |f: &GenFile| -> io::Result<()> {
        let p = dir.join(&f.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, &f.data)?;
        if f.exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    };
    for f in course_files(spec) {
        write(&f)?;
    }
    for i in 0..spec.questions {
        for f in question_files(spec, i, 0) {
            write(&f)?;
        }
    }
    Ok(())
}

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir);
    for (k, v) in [
        ("GIT_AUTHOR_NAME", "Kiln Gen"),
        ("GIT_AUTHOR_EMAIL", "gen@kiln.invalid"),
        ("GIT_COMMITTER_NAME", "Kiln Gen"),
        ("GIT_COMMITTER_EMAIL", "gen@kiln.invalid"),
        ("GIT_AUTHOR_DATE", "1700000000 +0000"),
        ("GIT_COMMITTER_DATE", "1700000000 +0000"),
    ] {
        c.env(k, v);
    }
    c
}

fn check(status: std::process::ExitStatus, what: &str) -> io::Result<()> {
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what} failed: {status}")))
    }
}

/// Streams commits into `git fast-import` in `dir`.
struct FastImport {
    child: std::process::Child,
    out: io::BufWriter<std::process::ChildStdin>,
    commits: u64,
}

impl FastImport {
    fn start(dir: &Path) -> io::Result<Self> {
        let mut child = git(dir)
            .args(["fast-import", "--quiet", "--done"])
            .stdin(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        Ok(FastImport {
            child,
            out: io::BufWriter::with_capacity(1 << 20, stdin),
            commits: 0,
        })
    }

    fn commit(&mut self, message: &str, from_head: bool, files: &[GenFile]) -> io::Result<()> {
        self.commits += 1;
        let w = &mut self.out;
        writeln!(w, "commit refs/heads/main")?;
        writeln!(
            w,
            "committer Kiln Gen <gen@kiln.invalid> {} +0000",
            1_700_000_000 + self.commits * 60
        )?;
        writeln!(w, "data {}\n{message}", message.len())?;
        if from_head {
            writeln!(w, "from refs/heads/main^0")?;
        }
        for f in files {
            let mode = if f.exec { "100755" } else { "100644" };
            writeln!(w, "M {mode} inline {}\ndata {}", f.path, f.data.len())?;
            w.write_all(&f.data)?;
            writeln!(w)?;
        }
        writeln!(w)
    }

    fn finish(mut self) -> io::Result<()> {
        writeln!(self.out, "done")?;
        self.out.flush()?;
        drop(self.out);
        check(self.child.wait()?, "git fast-import")
    }
}

/// The commit id `refs/heads/main` points at in `dir`.
pub fn head(dir: &Path) -> io::Result<String> {
    let out = git(dir).args(["rev-parse", "refs/heads/main"]).output()?;
    check(out.status, "git rev-parse")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes the course as a git repository at `dir` (created; bare if `bare`) whose history has
/// `spec.commits` commits on `main`; the work tree of a non-bare repository is left empty
/// (sync reads the object database). Returns the head commit id.
pub fn write_git(spec: &CourseSpec, dir: &Path, bare: bool) -> io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let mut init = git(dir);
    init.args(["init", "--quiet", "--initial-branch=main"]);
    if bare {
        init.arg("--bare");
    }
    check(init.status()?, "git init")?;
    let mut fi = FastImport::start(dir)?;
    let commits = spec.commits.max(1);
    let per = spec.questions.div_ceil(commits).max(1);
    for c in 0..commits {
        let mut files = if c == 0 {
            course_files(spec)
        } else {
            Vec::new()
        };
        let range = (c * per).min(spec.questions)..((c + 1) * per).min(spec.questions);
        let (lo, hi) = (range.start, range.end);
        for i in range {
            files.extend(question_files(spec, i, 0));
        }
        // Within one stream fast-import continues the branch on its own: no `from` needed.
        fi.commit(&format!("Add questions {lo}..{hi}"), false, &files)?;
    }
    fi.finish()?;
    head(dir)
}

/// Commits a change to question `i` (its `question.html`, as of change `round`, which should
/// be new for each call) on top of `main` in the repository at `dir`. Returns the new head.
pub fn commit_question_change(
    spec: &CourseSpec,
    dir: &Path,
    i: usize,
    round: u64,
) -> io::Result<String> {
    let files: Vec<GenFile> = question_files(spec, i, round)
        .into_iter()
        .filter(|f| f.path.ends_with("/question.html"))
        .collect();
    commit_files(dir, &format!("Edit question {i} (round {round})"), &files)
}

/// Commits `files` (added or replaced) on top of `main` in the repository at `dir`.
pub fn commit_files(dir: &Path, message: &str, files: &[GenFile]) -> io::Result<String> {
    let mut fi = FastImport::start(dir)?;
    fi.commits = 1_000;
    fi.commit(message, true, files)?;
    fi.finish()?;
    head(dir)
}

/// Turns the plain directory `dir` into a git repository with everything committed (a
/// second call commits what changed). Returns the head commit id.
pub fn commit_all(dir: &Path, message: &str) -> io::Result<String> {
    if !dir.join(".git").exists() {
        check(
            git(dir)
                .args(["init", "--quiet", "--initial-branch=main"])
                .status()?,
            "git init",
        )?;
    }
    check(git(dir).args(["add", "-A"]).status()?, "git add")?;
    check(
        git(dir)
            .args(["commit", "--quiet", "--allow-empty", "-m", message])
            .status()?,
        "git commit",
    )?;
    head(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_sized() {
        let spec = CourseSpec::new(3);
        let a = question_files(&spec, 1, 0);
        let b = question_files(&spec, 1, 0);
        assert_eq!(a.len(), 10);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.path == y.path && x.data == y.data)
        );
        let changed = question_files(&spec, 1, 1);
        assert_ne!(
            a[1].data, changed[1].data,
            "a new round changes question.html"
        );
        assert_eq!(a[2].data, changed[2].data, "and nothing else");
        assert_eq!(spec.question_id(250), "t002/q00250");
    }
}
