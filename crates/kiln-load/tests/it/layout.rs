//! The version directory: relative links into `.chunks/`, gathered chunks, path resolution.

use kiln_core::ids::ChunkKind;
use kiln_testkit::chunks::{BundleBuilder, question_chunk};

use crate::support::{Env, r};

#[tokio::test]
async fn version_directories_hold_relative_links_into_the_chunks() {
    let env = Env::new();
    let q = question_chunk("topic/q1", 3, 100, 1);
    let info = BundleBuilder::new()
        .file("infoCourse.json", "{\"name\":\"demo\"}")
        .file("courseInstances/Fa25/infoCourseInstance.json", "{}")
        .file("questions/topic/q1/info.json", "{\"uuid\":\"1\"}")
        .build(ChunkKind::CourseInfo, "", "");
    let v = env.publish("v1", &[&q, &info]).await;
    let cache = env.cache().await;
    let e = cache.ensure(&env.course, &[r(&q), r(&info)]).await.unwrap();
    let root = env.cache_dir().join("courses/demo").join(v.as_str());
    assert_eq!(
        std::fs::canonicalize(&e.root).unwrap(),
        std::fs::canonicalize(&root).unwrap()
    );

    let link = std::fs::read_link(root.join("questions/topic/q1")).unwrap();
    assert_eq!(
        link.to_str().unwrap(),
        format!("../../../.chunks/{}", q.entry.id)
    );
    assert!(
        std::fs::symlink_metadata(root.join("questions"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(e.paths[0], e.root.join("questions/topic/q1"));

    assert_eq!(e.paths[1], e.root.join(".kiln/courseInfo"));
    let link = std::fs::read_link(root.join("infoCourse.json")).unwrap();
    assert_eq!(
        link.to_str().unwrap(),
        format!("../.chunks/{}/infoCourse.json", info.entry.id)
    );
    let ci =
        std::fs::read_to_string(root.join("courseInstances/Fa25/infoCourseInstance.json")).unwrap();
    assert_eq!(ci, "{}");
    assert!(
        root.join(".kiln/courseInfo/questions/topic/q1/info.json")
            .exists()
    );
    // Files under a directory chunk's root come from that chunk, not from a gathered one.
    let qinfo = std::fs::read_link(root.join("questions/topic/q1")).unwrap();
    assert!(qinfo.to_str().unwrap().ends_with(&q.entry.id.to_hex()));

    // Chunk files are read-only.
    let meta = std::fs::metadata(root.join("questions/topic/q1/info.json")).unwrap();
    assert!(meta.permissions().readonly());
}

#[tokio::test]
async fn files_resolve_to_their_chunk() {
    let env = Env::new();
    let q = question_chunk("topic/q1", 3, 100, 1);
    let info = BundleBuilder::new()
        .file("infoCourse.json", "{\"name\":\"demo\"}")
        .build(ChunkKind::CourseInfo, "", "");
    let thumbs = BundleBuilder::new()
        .file("questions/topic/q1/thumbnail.png", "png")
        .build(ChunkKind::QuestionThumbnails, "", "");
    env.publish("v1", &[&q, &info, &thumbs]).await;
    let cache = env.cache().await;

    let f = cache
        .resolve_file(&env.course, None, "questions/topic/q1/info.json")
        .await
        .unwrap();
    assert_eq!(f.chunk.id, q.entry.id);
    let (mut file, meta) = f.open().unwrap();
    assert_eq!(meta.len(), 12);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut file, &mut s).unwrap();
    assert_eq!(s, "{\"uuid\":\"1\"}");

    let f = cache
        .resolve_file(&env.course, None, "infoCourse.json")
        .await
        .unwrap();
    assert_eq!(f.chunk.id, info.entry.id);
    assert_eq!(f.open().unwrap().1.len(), 15);

    let err = cache
        .resolve_file(&env.course, None, "nope.json")
        .await
        .unwrap_err();
    assert!(matches!(err, kiln_core::Error::NotFound { .. }), "{err:?}");
    let f = cache
        .resolve_file(&env.course, None, "questions/topic/q1/missing")
        .await
        .unwrap();
    assert!(matches!(
        f.open().unwrap_err(),
        kiln_core::Error::NotFound { .. }
    ));
}

#[tokio::test]
async fn chunks_a_course_lacks_are_absent_and_a_missing_question_is_not_found() {
    let env = Env::new();
    let q = question_chunk("topic/q1", 2, 100, 1);
    let elements = BundleBuilder::new().file("pl-thing/info.json", "{}").build(
        ChunkKind::Elements,
        "",
        "elements",
    );
    env.publish("v1", &[&q, &elements]).await;
    let cache = env.cache().await;
    let asked: Vec<kiln_core::ids::ChunkRef> = [
        "elementExtensions",
        "question:topic/q1",
        "serverFilesCourse",
        "elements",
        "clientFilesCourseInstance:Sp25",
        "questionThumbnails",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let e = cache.ensure(&env.course, &asked).await.unwrap();
    let absent: Vec<String> = e.absent.iter().map(ToString::to_string).collect();
    assert_eq!(
        absent,
        [
            "elementExtensions",
            "serverFilesCourse",
            "clientFilesCourseInstance:Sp25",
            "questionThumbnails"
        ]
    );
    // Paths and entries are those of the present chunks, in the order asked.
    assert_eq!(
        e.paths,
        [e.root.join("questions/topic/q1"), e.root.join("elements")]
    );
    assert_eq!(e.chunks, [q.entry.clone(), elements.entry.clone()]);
    assert!(e.paths[1].join("pl-thing/info.json").is_file());
    assert!(!e.root.join("elementExtensions").exists());
    assert_eq!(e.downloaded, [r(&q), r(&elements)]);

    // Only absent kinds asked for: nothing to fetch, still an answer.
    let e = cache
        .ensure(&env.course, &["clientFilesCourse".parse().unwrap()])
        .await
        .unwrap();
    assert!(e.paths.is_empty() && e.chunks.is_empty());
    assert_eq!(e.absent.len(), 1);

    // A question the version lacks fails the call, even next to absent kinds.
    let mut with_missing = asked.clone();
    with_missing.push("question:topic/nope".parse().unwrap());
    let err = cache.ensure(&env.course, &with_missing).await.unwrap_err();
    assert!(matches!(err, kiln_core::Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("question:topic/nope"), "{err}");
}
