//! Passwordless sign-in with a one-time code by email, over cognate's CUSTOM_AUTH
//! triggers: DefineAuthChallenge asks for a CUSTOM_CHALLENGE until the code is right
//! (tokens) or three answers were wrong (failure); CreateAuthChallenge makes a six-digit
//! code, mails it and keeps it in the private challenge parameters (and, as AWS's own
//! sample does, in the challenge metadata, so a retry reuses the same code);
//! VerifyAuthChallengeResponse compares the answer.

use cognate_worker::{
    Channel, CreateAuthChallengeEvent, DefineAuthChallengeEvent, MessageKind, OutgoingMessage,
    StringMap, VerifyAuthChallengeResponseEvent,
};

/// Wrong answers allowed before the sign-in fails.
pub const MAX_ATTEMPTS: usize = 3;
const METADATA_PREFIX: &str = "CODE-";

/// DefineAuthChallenge: the next step from the session so far.
pub fn define(mut event: DefineAuthChallengeEvent) -> DefineAuthChallengeEvent {
    let session = &event.request.session;
    let answers = session
        .iter()
        .filter(|c| c.challenge_name == "CUSTOM_CHALLENGE")
        .count();
    let r = &mut event.response;
    match session.last() {
        _ if event.request.user_not_found => r.fail_authentication = true,
        Some(last) if last.challenge_name == "CUSTOM_CHALLENGE" && last.challenge_result => {
            r.issue_tokens = true;
        }
        _ if answers >= MAX_ATTEMPTS => r.fail_authentication = true,
        _ => r.challenge_name = Some("CUSTOM_CHALLENGE".into()),
    }
    event
}

/// `a***@example.com`: enough for the user to recognise the address.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// CreateAuthChallenge: the code of this sign-in (new on the first challenge, the same one
/// on retries), and the email to send when it is new. `fresh_code` is only called when a
/// new code is needed.
pub fn create(
    mut event: CreateAuthChallengeEvent,
    fresh_code: impl FnOnce() -> String,
    message_id: &str,
) -> (CreateAuthChallengeEvent, Option<OutgoingMessage>) {
    let previous = event
        .request
        .session
        .iter()
        .rev()
        .find_map(|c| {
            c.challenge_metadata
                .as_deref()?
                .strip_prefix(METADATA_PREFIX)
        })
        .map(str::to_owned);
    let email = event.request.user_attributes.get("email").cloned();
    let (code, message) = match previous {
        Some(code) => (code, None),
        None => {
            let code = fresh_code();
            let message = email.as_ref().map(|to| OutgoingMessage {
                message_id: message_id.to_owned(),
                pool_id: event.user_pool_id.clone(),
                username: event.user_name.clone(),
                channel: Channel::Email,
                destination: to.clone(),
                subject: Some("Your sign-in code".into()),
                body: format!("Your sign-in code is {code}. It works for this sign-in only.")
                    .into(),
                kind: MessageKind::Authentication,
            });
            (code, message)
        }
    };
    let mut public = StringMap::new();
    public.insert(
        "email".into(),
        email.as_deref().map_or_else(|| "***".into(), mask_email),
    );
    let mut private = StringMap::new();
    private.insert("answer".into(), code.clone());
    event.response.public_challenge_parameters = public;
    event.response.private_challenge_parameters = private;
    event.response.challenge_metadata = Some(format!("{METADATA_PREFIX}{code}"));
    (event, message)
}

/// VerifyAuthChallengeResponse: whether the answer is the code (compared without an early
/// exit on the first differing digit).
pub fn verify(mut event: VerifyAuthChallengeResponseEvent) -> VerifyAuthChallengeResponseEvent {
    let expected = event
        .request
        .private_challenge_parameters
        .get("answer")
        .map_or(&[][..], String::as_bytes);
    let given = event.request.challenge_answer.trim().as_bytes();
    let same = expected.len() == given.len()
        && !expected.is_empty()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    event.response.answer_correct = same;
    event
}

/// Six random digits from the operating system's generator, by rejection sampling.
pub fn random_code() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut f = std::fs::File::open("/dev/urandom")?;
    loop {
        let mut b = [0u8; 4];
        f.read_exact(&mut b)?;
        let x = u32::from_le_bytes(b);
        // 4_294_000_000 is the largest multiple of 10^6 below 2^32.
        if x < 4_294_000_000 {
            return Ok(format!("{:06}", x % 1_000_000));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cognate_worker::ChallengeResult;

    fn step(name: &str, ok: bool, meta: Option<&str>) -> ChallengeResult {
        ChallengeResult {
            challenge_name: name.into(),
            challenge_result: ok,
            challenge_metadata: meta.map(str::to_owned),
        }
    }

    #[test]
    fn define_asks_until_right_or_three_wrong() {
        let mut e = DefineAuthChallengeEvent::default();
        let r = define(e.clone()).response;
        assert_eq!(r.challenge_name.as_deref(), Some("CUSTOM_CHALLENGE"));
        e.request.session = vec![step("CUSTOM_CHALLENGE", false, None)];
        assert_eq!(
            define(e.clone()).response.challenge_name.as_deref(),
            Some("CUSTOM_CHALLENGE")
        );
        e.request.session.push(step("CUSTOM_CHALLENGE", true, None));
        assert!(define(e.clone()).response.issue_tokens);
        e.request.session = vec![step("CUSTOM_CHALLENGE", false, None); 3];
        assert!(define(e.clone()).response.fail_authentication);
        e.request.session.clear();
        e.request.user_not_found = true;
        assert!(define(e).response.fail_authentication);
    }

    #[test]
    fn create_mails_a_new_code_once_and_reuses_it() {
        let mut e = CreateAuthChallengeEvent {
            user_pool_id: "us-east-1_abcdefghi".into(),
            user_name: "ann".into(),
            ..Default::default()
        };
        e.request
            .user_attributes
            .insert("email".into(), "ann@example.com".into());
        let (out, mail) = create(e.clone(), || "123456".into(), "m1");
        assert_eq!(
            out.response.private_challenge_parameters["answer"],
            "123456"
        );
        assert_eq!(
            out.response.public_challenge_parameters["email"],
            "a***@example.com"
        );
        let mail = mail.unwrap();
        assert_eq!(mail.destination, "ann@example.com");
        assert!(mail.body.as_str().contains("123456"));
        e.request.session = vec![step("CUSTOM_CHALLENGE", false, Some("CODE-123456"))];
        let (out, mail) = create(e, || panic!("no new code on a retry"), "m2");
        assert!(mail.is_none());
        assert_eq!(
            out.response.private_challenge_parameters["answer"],
            "123456"
        );
    }

    #[test]
    fn verify_compares_the_code() {
        let mut e = VerifyAuthChallengeResponseEvent::default();
        e.request
            .private_challenge_parameters
            .insert("answer".into(), "123456".into());
        e.request.challenge_answer = " 123456 ".into();
        assert!(verify(e.clone()).response.answer_correct);
        e.request.challenge_answer = "123457".into();
        assert!(!verify(e.clone()).response.answer_correct);
        e.request.private_challenge_parameters.clear();
        e.request.challenge_answer = String::new();
        assert!(!verify(e).response.answer_correct);
    }

    #[test]
    fn codes_are_six_digits() {
        let c = random_code().unwrap();
        assert_eq!(c.len(), 6);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
    }
}
