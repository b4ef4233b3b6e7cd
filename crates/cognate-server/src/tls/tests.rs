use super::*;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and leaves it signs, as PEM text (leaf, its key).
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn leaf(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(cert: &str, key: &str) -> Files {
        let f = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        f.replace(cert, key);
        f
    }
    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }
    /// Replaces both files by rename, as an atomic update would. The old versions are
    /// kept (hard links), so a new file never reuses their inode within one clock tick.
    fn replace(&self, cert: &str, key: &str) {
        for (path, text) in [(self.cert(), cert), (self.key(), key)] {
            if path.exists() {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let old = self.dir.path().join(format!("old-{n}"));
                std::fs::hard_link(&path, old).unwrap();
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

fn leaf_der(c: &CertifiedKey) -> Vec<u8> {
    c.cert[0].as_ref().to_vec()
}

#[test]
fn loads_a_chain_and_its_key() {
    let ca = Ca::new();
    let (leaf, key) = ca.leaf("one");
    let files = Files::new(&format!("{leaf}{}", ca.pem), &key);
    let loaded = load(&files.cert(), &files.key(), &provider()).unwrap();
    assert_eq!(
        loaded.cert.len(),
        2,
        "leaf and intermediate are both served"
    );
}

#[test]
fn startup_errors_name_the_file_and_the_problem() {
    let ca = Ca::new();
    let (leaf, key) = ca.leaf("one");
    let (_, other_key) = ca.leaf("two");
    let p = provider();

    let files = Files::new(&leaf, &other_key);
    let e = load(&files.cert(), &files.key(), &p).unwrap_err();
    assert!(matches!(e, TlsError::Mismatch { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&*files.key().to_string_lossy())
            && text.contains(&*files.cert().to_string_lossy())
            && text.contains("does not match"),
        "{text}"
    );

    let files = Files::new(&leaf, "not a key\n");
    let e = load(&files.cert(), &files.key(), &p).unwrap_err();
    assert!(
        matches!(&e, TlsError::NoKey { path } if *path == files.key()),
        "{e:?}"
    );

    let files = Files::new(&key, &key);
    let e = load(&files.cert(), &files.key(), &p).unwrap_err();
    assert!(
        matches!(&e, TlsError::NoCertificate { path } if *path == files.cert()),
        "{e:?}"
    );

    let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let files = Files::new(broken, &key);
    let e = load(&files.cert(), &files.key(), &p).unwrap_err();
    assert!(
        matches!(&e, TlsError::Certificate { path, .. } if *path == files.cert()),
        "{e:?}"
    );

    let missing = files.dir.path().join("absent.pem");
    let e = load(&missing, &files.key(), &p).unwrap_err();
    assert!(
        matches!(&e, TlsError::Read { path, .. } if *path == missing),
        "{e:?}"
    );
    assert!(e.to_string().contains("absent.pem"), "{e}");
}

#[test]
fn replaced_files_are_served_and_broken_ones_are_not() {
    let ca = Ca::new();
    let (leaf1, key1) = ca.leaf("one");
    let files = Files::new(&leaf1, &key1);
    let resolver = ReloadingCert::open(&files.cert(), &files.key()).unwrap();
    let first = leaf_der(&resolver.current());
    assert_eq!(resolver.reload_if_changed(), Reload::Unchanged);

    let (leaf2, key2) = ca.leaf("two");
    files.replace(&leaf2, &key2);
    assert_eq!(resolver.reload_if_changed(), Reload::Reloaded);
    let second = leaf_der(&resolver.current());
    assert_ne!(first, second);
    assert_eq!(resolver.reload_if_changed(), Reload::Unchanged);

    // A new certificate with the old key: refused, the second pair stays.
    let (leaf3, _) = ca.leaf("three");
    files.replace(&leaf3, &key2);
    assert_eq!(resolver.reload_if_changed(), Reload::Kept);
    assert_eq!(leaf_der(&resolver.current()), second);
    // Reported once, not at every look.
    assert_eq!(resolver.reload_if_changed(), Reload::Unchanged);

    // Garbage, then the files gone: still the second pair.
    files.replace("garbage", "garbage");
    assert_eq!(resolver.reload_if_changed(), Reload::Kept);
    std::fs::remove_file(files.cert()).unwrap();
    assert_eq!(resolver.reload_if_changed(), Reload::Kept);
    assert_eq!(leaf_der(&resolver.current()), second);

    // Repaired: picked up.
    let (leaf4, key4) = ca.leaf("four");
    files.replace(&leaf4, &key4);
    assert_eq!(resolver.reload_if_changed(), Reload::Reloaded);
    assert_ne!(leaf_der(&resolver.current()), second);
}

/// cert-manager and the kubelet update a Secret volume by pointing `..data` at a new
/// directory; the files themselves are symlinks through it.
#[test]
fn a_symlink_swap_is_seen() {
    use std::os::unix::fs::symlink;
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let write_version = |name: &str, (cert, key): (String, String)| {
        let v = dir.path().join(name);
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("tls.crt"), cert).unwrap();
        std::fs::write(v.join("tls.key"), key).unwrap();
    };
    write_version("..v1", ca.leaf("one"));
    symlink("..v1", dir.path().join("..data")).unwrap();
    symlink("..data/tls.crt", dir.path().join("tls.crt")).unwrap();
    symlink("..data/tls.key", dir.path().join("tls.key")).unwrap();
    let resolver =
        ReloadingCert::open(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let first = leaf_der(&resolver.current());

    write_version("..v2", ca.leaf("two"));
    symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    assert_eq!(resolver.reload_if_changed(), Reload::Reloaded);
    assert_ne!(leaf_der(&resolver.current()), first);
}
