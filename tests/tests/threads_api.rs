//! The threads adapter's own API: a cloneable sender used from many threads.

use std::collections::HashMap;

use switchboard_conformance::RuntimeKind;
use switchboard_conformance::runtime::{conformance_config, spawn_ws_echo};
use switchboard_threads::ws::{self, Message};

#[test]
fn cloned_senders_send_from_many_threads_without_loss_or_reordering() {
    let addr = spawn_ws_echo(RuntimeKind::Threads, conformance_config());
    let mut socket = ws::connect(&format!("ws://{addr}/")).expect("connect");
    let senders: Vec<_> = (0..4)
        .map(|thread| {
            let sender = socket.sender();
            std::thread::spawn(move || {
                for i in 0..200 {
                    sender
                        .send(Message::text(format!("{thread}:{i}")))
                        .expect("send");
                }
            })
        })
        .collect();
    let mut next: HashMap<u32, u32> = HashMap::new();
    let mut received = 0;
    while received < 800 {
        let message = socket.recv().expect("open").expect("message");
        let text = message.as_text().expect("text").to_string();
        let (thread, i) = text.split_once(':').unwrap();
        let (thread, i): (u32, u32) = (thread.parse().unwrap(), i.parse().unwrap());
        let expected = next.entry(thread).or_default();
        assert_eq!(i, *expected, "messages of thread {thread} reordered");
        *expected += 1;
        received += 1;
    }
    for handle in senders {
        handle.join().unwrap();
    }
    socket.close(None).expect("close");
    assert!(socket.recv().is_none());
}

#[test]
fn send_all_writes_a_batch_in_order_and_next_buffered_gathers_a_read() {
    let addr = spawn_ws_echo(RuntimeKind::Threads, conformance_config());
    let mut socket = ws::connect(&format!("ws://{addr}/")).expect("connect");
    let batch: Vec<Message> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                Message::text(format!("text {i}"))
            } else {
                Message::binary(vec![i as u8; i])
            }
        })
        .collect();
    socket.sender().send_all(batch.clone()).expect("send_all");
    let mut received = Vec::new();
    while received.len() < batch.len() {
        received.push(socket.recv().expect("open").expect("message"));
        while let Some(next) = socket.next_buffered() {
            received.push(next.expect("message"));
        }
    }
    assert_eq!(received, batch);
    // Nothing is left over: the echo of a later send is the next message.
    socket.send(Message::text("after")).expect("send");
    assert_eq!(
        socket.recv().expect("open").expect("message"),
        Message::text("after")
    );
    socket.close(None).expect("close");
    assert!(socket.recv().is_none());
}
