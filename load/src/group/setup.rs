//! Making the group before the run: the first member sends CREATE GROUP (8) with up to 1,000
//! other members, then ADD MEMBERS (11) for each further 1,000 (docs/protocol.md §3, §8), each
//! time waiting for its reply.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chat_client::connect::{classify, Event};
use chat_client::Connection;
use chat_protocol::{ClientFrame, GroupId, Reply, Request, RequestId, ServerFrame, UserId};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Members per CREATE GROUP or ADD MEMBERS (the protocol's limit).
pub const MEMBERS_PER_REQUEST: usize = 1000;
/// How long one setup request may take.
const REPLY_WITHIN: Duration = Duration::from_secs(30);

/// The setup requests for a group of `creator` and `others`: CREATE with the first chunk, then
/// ADD MEMBERS for the rest (their group id is filled in once CREATE answers).
pub fn chunks(others: &[UserId]) -> (Vec<UserId>, Vec<Vec<UserId>>) {
    let mut chunks = others.chunks(MEMBERS_PER_REQUEST).map(<[UserId]>::to_vec);
    let first = chunks.next().unwrap_or_default();
    (first, chunks.collect())
}

/// Creates group `name` on `creator`'s connection with `others` as members; returns its id.
pub async fn create_group(
    creator: &mut Connection,
    name: &str,
    others: &[UserId],
) -> anyhow::Result<GroupId> {
    let (first, rest) = chunks(others);
    let create = Request::CreateGroup {
        name: name.to_owned(),
        members: first,
    };
    let group_id = match request(creator, create, "g0").await? {
        Reply::CreateGroup(info) => info.group_id,
        other => bail!("CREATE GROUP answered with type {}", other.kind()),
    };
    for (i, members) in rest.into_iter().enumerate() {
        let add = Request::AddMembers {
            group_id: group_id.clone(),
            members,
        };
        match request(creator, add, &format!("g{}", i + 1)).await? {
            Reply::AddMembers(_) => {}
            other => bail!("ADD MEMBERS answered with type {}", other.kind()),
        }
    }
    Ok(group_id)
}

/// Sends `request` and reads until its reply (other frames are skipped: nothing else is going
/// on yet).
async fn request(conn: &mut Connection, request: Request, id: &str) -> anyhow::Result<Reply> {
    let request_id = RequestId::Text(id.to_owned());
    let frame = ClientFrame::new(request, Some(request_id.clone())).to_json();
    conn.ws.send(Message::text(frame)).await?;
    let wait = async {
        loop {
            match classify(conn.ws.next().await) {
                Event::Text(text) => match ServerFrame::parse(&text) {
                    Ok(ServerFrame::Reply {
                        reply,
                        request_id: Some(rid),
                    }) if rid == request_id => return Ok(reply),
                    Ok(ServerFrame::Error {
                        error,
                        request_id: Some(rid),
                    }) if rid == request_id => {
                        return Err(anyhow!("group setup refused: {error:?}"));
                    }
                    _ => {}
                },
                Event::Ignore => {}
                Event::Ended(reason) => bail!("connection ended during group setup: {reason}"),
            }
        }
    };
    tokio::time::timeout(REPLY_WITHIN, wait)
        .await
        .with_context(|| format!("no answer to group setup request {id} in {REPLY_WITHIN:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_go_in_chunks_of_a_thousand() {
        let ids: Vec<UserId> = (0..2500)
            .map(|i| UserId::parse(format!("m{i}")).unwrap())
            .collect();
        let (first, rest) = chunks(&ids);
        assert_eq!(first.len(), 1000);
        assert_eq!(
            rest.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 500]
        );
        assert_eq!(rest[1][499].as_str(), "m2499");
        let (first, rest) = chunks(&[]);
        assert!(first.is_empty() && rest.is_empty());
    }
}
