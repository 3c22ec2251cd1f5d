//! Atomic batches (`hypercore::atomic`): appends staged through the sessions of one atom become visible in
//! their cores together on flush, survive a reopen, and never show one core's part without the others'.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use holepunch_cores::hypercore::atomic::Atom;
use holepunch_cores::hypercore::{Hypercore, HypercoreError, MAX_BLOCK_SIZE};
use holepunch_wire::crypto::KeyPair;

fn tmp(name: &str) -> std::path::PathBuf {
    testkit::scratch_dir(&format!("hc-atomic-{name}"))
}

#[test]
fn staged_appends_show_together_on_flush_and_persist() {
    let a = Hypercore::create(tmp("a"), KeyPair::from_seed(&[1; 32])).expect("a");
    let kp = KeyPair::from_seed(&[2; 32]);
    let b =
        Hypercore::create_js(tmp("b"), kp.public, None, Some(&kp), Vec::new(), None).expect("b");
    a.append(&[b"a0"]).expect("append");
    let atom = Atom::new();
    let sa = atom.session(&a).expect("session");
    let sb = atom.session(&b).expect("session");
    assert_eq!(sa.append(&[b"a1", b"a2"]).expect("stage").length, 3);
    assert_eq!(sb.append(&[b"b0"]).expect("stage").length, 1);
    assert_eq!(sa.append(&[b"a3"]).expect("stage").length, 4);
    assert_eq!(
        (a.length(), b.length()),
        (1, 0),
        "nothing visible before the flush"
    );
    assert_eq!((sa.length(), sb.length(), atom.pending()), (4, 1, 4));
    assert_eq!(sa.get(0).expect("get"), Some(b"a0".to_vec()));
    assert_eq!(sa.get(2).expect("get"), Some(b"a2".to_vec()));
    assert_eq!(sa.get(4).expect("get"), None);
    assert_eq!(sb.get(0).expect("get"), Some(b"b0".to_vec()));

    let out = atom.flush().expect("flush");
    assert_eq!(
        out.iter()
            .map(|(c, o)| (c.key(), o.length))
            .collect::<Vec<_>>(),
        vec![(a.key(), 4), (b.key(), 1)]
    );
    assert_eq!(
        (a.length(), b.length(), atom.pending(), sa.pending()),
        (4, 1, 0, 0)
    );
    assert_eq!((a.signed_length(), b.signed_length()), (4, 1));
    assert!(atom.flush().expect("empty flush").is_empty());

    // Staged then discarded: gone.
    sb.append(&[b"never"]).expect("stage");
    atom.discard();
    assert_eq!(atom.flush().expect("flush").len(), 0);

    let (da, db) = (a.dir().to_path_buf(), b.dir().to_path_buf());
    drop((a, b, sa, sb, atom, out));
    let a = Hypercore::open(&da).expect("reopen a");
    let b = Hypercore::open(&db).expect("reopen b");
    assert_eq!((a.length(), b.length()), (4, 1));
    assert_eq!(a.get(3).expect("get"), Some(b"a3".to_vec()));
    assert_eq!(b.get(0).expect("get"), Some(b"b0".to_vec()));
}

#[test]
fn readers_never_see_half_a_flush() {
    let a = Hypercore::create(tmp("race-a"), KeyPair::from_seed(&[3; 32])).expect("a");
    let b = Hypercore::create(tmp("race-b"), KeyPair::from_seed(&[4; 32])).expect("b");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (a, b, done) = (a.clone(), b.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                // b first: if b shows a flush, a (published under the same locks) must show it too.
                let lb = b.length();
                let la = a.length();
                assert!(
                    la >= 2 * lb,
                    "a at {la} but b at {lb}: half a flush was visible"
                );
                reads += 1;
                if finished {
                    return reads;
                }
            }
        })
    };
    let atom = Atom::new();
    let (sa, sb) = (atom.session(&a).expect("s"), atom.session(&b).expect("s"));
    for i in 0..50u32 {
        sb.append(&[&i.to_le_bytes()]).expect("stage");
        sa.append(&[&i.to_le_bytes(), b"x"]).expect("stage");
        atom.flush().expect("flush");
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().expect("reader") > 0);
    assert_eq!((a.length(), b.length()), (100, 50));
}

#[test]
fn atomic_errors_change_nothing() {
    let kp = KeyPair::from_seed(&[5; 32]);
    let w = Hypercore::create(tmp("err-w"), kp.clone()).expect("w");
    let r = Hypercore::create_reader(tmp("err-r"), kp.public, None).expect("r");
    let atom = Atom::new();
    assert!(matches!(atom.session(&r), Err(HypercoreError::NotWritable)));
    let s = atom.session(&w).expect("session");
    let big = vec![0u8; MAX_BLOCK_SIZE + 1];
    assert!(matches!(
        s.append(&[&big]),
        Err(HypercoreError::BlockTooLarge(_))
    ));
    assert_eq!(atom.pending(), 0);

    // An encrypted core: staged plaintext, stored encrypted, read back decrypted.
    let key = [7u8; 32];
    w.set_encryption_key(&key, false);
    s.append(&[b"secret"]).expect("stage");
    atom.flush().expect("flush");
    assert_eq!(w.get(0).expect("get"), Some(b"secret".to_vec()));
    assert_ne!(w.get_raw(0).expect("raw"), Some(b"secret".to_vec()));
}
