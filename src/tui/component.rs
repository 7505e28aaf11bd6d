//! The contract every panel keeps: it answers a key with [`Handled`] and lists
//! the keys it offers, which feed the always-visible bottom bar and `?` help.

use std::borrow::Cow;

/// What a component did with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled<T = ()> {
    /// Not for this component: the next one up may take it.
    NotConsumed,
    /// Taken; state may have changed.
    Consumed,
    /// Taken, and the owner has something to do.
    Action(T),
}

impl<T> Handled<T> {
    pub fn consumed(&self) -> bool {
        !matches!(self, Handled::NotConsumed)
    }
}

/// One key and what it does here (rebound keys are not `'static`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHint {
    pub key: Cow<'static, str>,
    pub action: Cow<'static, str>,
}

pub const fn hint(key: &'static str, action: &'static str) -> KeyHint {
    KeyHint {
        key: Cow::Borrowed(key),
        action: Cow::Borrowed(action),
    }
}

/// A panel that takes keys and says which ones.
pub trait Component {
    type Action;
    fn handle_key(&mut self, key: &crossterm::event::KeyEvent) -> Handled<Self::Action>;
    fn hints(&self) -> Vec<KeyHint>;
}
