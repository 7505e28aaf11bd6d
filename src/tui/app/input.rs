//! A one-line text field (tui-input) for the filter, the command line, size
//! edits, the approval hash and masked secret prompts.

use crate::tui::component::{Component, Handled, KeyHint, hint};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;
use zeroize::Zeroize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputAction {
    Submit(String),
    Cancel,
    /// The text changed (the filter applies as you type).
    Changed,
}

#[derive(Debug, Default)]
pub struct LineInput {
    pub label: String,
    input: Input,
    /// Draw bullets instead of the text (secrets).
    pub masked: bool,
    /// Why the last submission was refused, shown next to the field.
    pub error: Option<String>,
}

impl LineInput {
    pub fn new(label: impl Into<String>) -> LineInput {
        LineInput {
            label: label.into(),
            input: Input::default(),
            masked: false,
            error: None,
        }
    }

    pub fn masked(label: impl Into<String>) -> LineInput {
        LineInput {
            label: label.into(),
            input: Input::default(),
            masked: true,
            error: None,
        }
    }

    pub fn with_value(mut self, value: &str) -> LineInput {
        self.input = Input::new(value.to_string());
        self
    }

    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// What to draw: the text, or one bullet per character when masked.
    pub fn display(&self) -> String {
        if self.masked {
            "•".repeat(self.input.value().chars().count())
        } else {
            self.input.value().to_string()
        }
    }

    pub fn cursor(&self) -> usize {
        self.input.visual_cursor()
    }

    pub fn set(&mut self, value: &str) {
        self.wipe();
        self.input = Input::new(value.to_string());
    }

    /// Takes the value out, leaving the field empty.
    pub fn take(&mut self) -> String {
        self.input.value_and_reset()
    }

    /// Overwrites the held text (secrets must not linger in freed memory).
    pub fn wipe(&mut self) {
        let mut text = self.input.value_and_reset();
        text.zeroize();
    }

    pub fn paste(&mut self, text: &str) {
        let mut value = self.input.value().to_string();
        value.push_str(text.lines().next().unwrap_or_default());
        self.input = Input::new(value.clone());
        value.zeroize();
    }
}

impl Component for LineInput {
    type Action = InputAction;

    fn handle_key(&mut self, key: &KeyEvent) -> Handled<InputAction> {
        match key.code {
            KeyCode::Enter => {
                let value = if self.masked {
                    self.take()
                } else {
                    self.value().to_string()
                };
                Handled::Action(InputAction::Submit(value))
            }
            KeyCode::Esc => {
                self.wipe();
                Handled::Action(InputAction::Cancel)
            }
            _ => match self.input.handle_event(&TermEvent::Key(*key)) {
                Some(change) if change.value => {
                    self.error = None;
                    Handled::Action(InputAction::Changed)
                }
                _ => Handled::Consumed,
            },
        }
    }

    fn hints(&self) -> Vec<KeyHint> {
        vec![hint("Enter", "accept"), hint("Esc", "cancel")]
    }
}

impl Drop for LineInput {
    fn drop(&mut self) {
        if self.masked {
            self.wipe();
        }
    }
}
