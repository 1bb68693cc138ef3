use super::*;

fn expired(auth: &Auth) -> String {
    let now = (now_ms() / 1000) as u64;
    auth.sign(&Claims {
        sub: "a".into(),
        name: None,
        exp: now - 1,
        iat: Some((now - 60) as f64),
        role: None,
    })
    .unwrap()
}

#[tokio::test]
async fn issues_and_verifies() {
    let auth = Auth::new(b"s3cret");
    let token = auth.issue("alice", Some("Alice"), false, 60).unwrap();
    let claims = auth.verify(&token).await.unwrap();
    assert_eq!(
        (
            claims.sub.as_str(),
            claims.display_name(),
            claims.is_service()
        ),
        ("alice", "Alice", false)
    );
    let age = now_ms() - claims.issued_at_ms().unwrap();
    assert!((0..5_000).contains(&age), "iat is now: {age} ms ago");
    let service = auth.issue("svc", None, true, 60).unwrap();
    assert!(auth.verify(&service).await.unwrap().is_service());
}

#[tokio::test]
async fn rejects_wrong_secret_expired_and_garbage() {
    let auth = Auth::new(b"s3cret");
    let other = Auth::new(b"other").issue("alice", None, false, 60).unwrap();
    assert_eq!(auth.verify(&other).await.unwrap_err().status(), 401);
    let err = auth.verify(&expired(&auth)).await.unwrap_err();
    assert_eq!(err.to_string(), "token expired");
    assert_eq!(auth.verify("a.b.c").await.unwrap_err().status(), 401);
}

#[tokio::test]
async fn the_previous_secret_verifies_but_never_signs() {
    let old = Auth::new(b"old");
    let rotated = Auth::new(b"new").with_previous_secret(b"old");
    let token = old.issue("alice", None, false, 60).unwrap();
    assert_eq!(rotated.verify(&token).await.unwrap().sub, "alice");
    let fresh = rotated.issue("bob", None, false, 60).unwrap();
    assert_eq!(
        old.verify(&fresh).await.unwrap_err().to_string(),
        "token signature invalid"
    );
    // Expired under the previous secret says so, not "signature invalid".
    let err = rotated.verify(&expired(&old)).await.unwrap_err();
    assert_eq!(err.to_string(), "token expired");
}

#[tokio::test]
async fn a_service_key_signs_service_tokens_only() {
    let plain = Auth::new(b"user");
    let auth = Auth::new(b"user").with_service_secret(b"svc");
    let service = auth.issue("ops", None, true, 60).unwrap();
    assert!(auth.verify(&service).await.unwrap().is_service());
    // The same claims with the user key: refused.
    let forged = plain.issue("ops", None, true, 60).unwrap();
    let err = auth.verify(&forged).await.unwrap_err();
    assert!(err.to_string().contains("service key"), "{err}");
    // A user token signed with the service key: refused too.
    let odd = Auth::new(b"svc").issue("alice", None, false, 60).unwrap();
    let err = auth.verify(&odd).await.unwrap_err();
    assert!(err.to_string().contains("must carry role"), "{err}");
    // User tokens still verify.
    let user = auth.issue("alice", None, false, 60).unwrap();
    assert!(!auth.verify(&user).await.unwrap().is_service());
}

#[tokio::test]
async fn other_algorithms_are_refused_without_a_jwks() {
    // An RS256 header on an HS256 body: no JWKS, so refused before any key is tried.
    let token = Auth::new(b"s3cret")
        .issue("alice", None, false, 60)
        .unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let header = base64_url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let err = Auth::new(b"s3cret")
        .verify(&format!("{header}.{rest}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no --jwt-jwks"), "{err}");
}

fn base64_url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
