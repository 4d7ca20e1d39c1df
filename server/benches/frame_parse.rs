//! The frame parser: what every client frame goes through before it is interpreted.

use criterion::{criterion_group, criterion_main, Criterion};
use overtone_server::frame::{ClientFrame, SubscribeData};
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let subscribe = r#"{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-room.42"}}"#;
    let whisper = r#"{"event":"client-typing","channel":"private-chat.7","data":{"name":"Ann","typing":true}}"#;
    let ping = r#"{"event":"pusher:ping","data":{}}"#;

    c.bench_function("parse/ping", |b| {
        b.iter(|| ClientFrame::parse(black_box(ping)).unwrap().event.len())
    });
    c.bench_function("parse/client_event", |b| {
        b.iter(|| {
            ClientFrame::parse(black_box(whisper))
                .unwrap()
                .data
                .map(|d| d.get().len())
        })
    });
    c.bench_function("parse/subscribe_with_data", |b| {
        b.iter(|| {
            let frame = ClientFrame::parse(black_box(subscribe)).unwrap();
            let data: SubscribeData = serde_json::from_str(frame.data.unwrap().get()).unwrap();
            data.channel.len()
        })
    });
}

criterion_group!(benches, parse);
criterion_main!(benches);
