//! The browser shell: owns the WebSocket and hands frames, parsed with the browser's own
//! `JSON.parse`, to JavaScript callbacks.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Reflect, JSON};
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, WebSocket};

/// A connection to a Pusher-protocol server, as JavaScript sees it.
#[wasm_bindgen]
pub struct Connection {
    inner: Rc<RefCell<Inner>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

struct Inner {
    socket: WebSocket,
    connected: bool,
    channels: Vec<String>,
    listeners: Vec<(String, String, Function)>,
}

#[wasm_bindgen]
impl Connection {
    /// Opens `url` (`ws://host:port/app/{key}?protocol=7...`).
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str) -> Result<Connection, JsValue> {
        let socket = WebSocket::new(url)?;
        let inner = Rc::new(RefCell::new(Inner {
            socket: socket.clone(),
            connected: false,
            channels: Vec::new(),
            listeners: Vec::new(),
        }));
        let weak = Rc::downgrade(&inner);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let (Some(inner), Some(text)) = (weak.upgrade(), event.data().as_string()) {
                inner.borrow_mut().on_frame(&text);
            }
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Connection { inner, _on_message: on_message })
    }

    /// Subscribes to a public channel (now, or once connected).
    pub fn subscribe(&self, channel: &str) {
        let mut inner = self.inner.borrow_mut();
        inner.channels.push(channel.to_owned());
        if inner.connected {
            inner.send_subscribe(channel);
        }
    }

    /// Calls `callback(data)` for every `event` on `channel`.
    pub fn bind(&self, channel: &str, event: &str, callback: Function) {
        self.inner.borrow_mut().listeners.push((channel.to_owned(), event.to_owned(), callback));
    }

    pub fn disconnect(&self) {
        let _ = self.inner.borrow().socket.close();
    }
}

impl Inner {
    fn on_frame(&mut self, text: &str) {
        let Ok(frame) = JSON::parse(text) else { return };
        let field = |name: &str| Reflect::get(&frame, &JsValue::from_str(name)).ok();
        let event = field("event").and_then(|v| v.as_string()).unwrap_or_default();
        let data = field("data").unwrap_or(JsValue::UNDEFINED);
        // The protocol double-encodes data; undo it when it is a JSON string.
        let data = match data.as_string() {
            Some(s) => JSON::parse(&s).unwrap_or(data),
            None => data,
        };
        if event == "pusher:connection_established" {
            self.connected = true;
            for channel in self.channels.clone() {
                self.send_subscribe(&channel);
            }
            return;
        }
        let Some(channel) = field("channel").and_then(|v| v.as_string()) else { return };
        for (_, _, callback) in self.listeners.iter().filter(|(c, e, _)| *c == channel && *e == event) {
            let _ = callback.call1(&JsValue::NULL, &data);
        }
    }

    fn send_subscribe(&self, channel: &str) {
        let frame = js_sys::Object::new();
        let data = js_sys::Object::new();
        let _ = Reflect::set(&data, &"channel".into(), &channel.into());
        let _ = Reflect::set(&frame, &"event".into(), &"pusher:subscribe".into());
        let _ = Reflect::set(&frame, &"data".into(), &data);
        if let Ok(text) = JSON::stringify(&frame) {
            let _ = self.socket.send_with_str(&String::from(text));
        }
    }
}
