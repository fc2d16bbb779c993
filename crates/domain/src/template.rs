//! The template aggregate: registration and approval status at the provider.

use crate::events::{ApprovalStatus, TemplateCategory, TemplateEvent};
use crate::ids::TemplateId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateDefinition {
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub placeholders: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateState {
    pub id: Option<TemplateId>,
    pub definition: Option<TemplateDefinition>,
    /// `None` until registered; registration starts at `Pending`.
    pub approval: Option<ApprovalStatus>,
}

impl TemplateState {
    pub fn apply(mut self, event: &TemplateEvent) -> Self {
        self.id.get_or_insert_with(|| event.template().clone());
        match event {
            TemplateEvent::Registered {
                name,
                language,
                category,
                placeholders,
                ..
            } => {
                self.definition = Some(TemplateDefinition {
                    name: name.clone(),
                    language: language.clone(),
                    category: *category,
                    placeholders: placeholders.clone(),
                });
                // A re-registration keeps the approval it had; a new one waits for approval.
                self.approval.get_or_insert(ApprovalStatus::Pending);
            }
            TemplateEvent::ApprovalChanged { status, .. } => {
                self.approval = Some(*status);
            }
        }
        self
    }

    pub fn is_approved(&self) -> bool {
        self.definition.is_some() && self.approval == Some(ApprovalStatus::Approved)
    }
}
