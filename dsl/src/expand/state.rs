//! A stage's state struct: what a checkpoint stores under the stage's name.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::quote;

use super::Cx;
use crate::ops::StageItems;
use crate::plan::StagePlan;

/// The state struct of stage `s`, holding `items.state`.
pub fn stage_struct(s: &StagePlan, items: &StageItems, cx: &Cx) -> TokenStream {
    let (rt, serde, serde_path) = (&cx.rt, &cx.serde, cx.serde_path);
    let (stage, state_ty, field_doc) = (&s.names.state, &items.state, items.state_doc);
    let sname = s.name.to_string();
    let doc = format!("State of stage `{sname}`: the value of `\"{sname}\"` in a checkpoint.");
    let state_layout = located_at(
        quote!(<#state_ty as #rt::Checkpointable>::LAYOUT),
        items.blame,
    );
    quote! {
        #[doc = #doc]
        #[derive(Default, Clone, Debug, PartialEq, #serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_path, transparent)]
        pub struct #stage {
            #[doc = #field_doc]
            pub state: #state_ty,
        }

        impl #rt::delta::Tracked for #stage {
            type Delta = #rt::delta::DeltaOf<#state_ty>;
            fn version(&self) -> #rt::delta::Version {
                #rt::delta::Tracked::version(&self.state)
            }
            fn write_delta(
                &self,
                since: ::core::option::Option<#rt::delta::Version>,
                name: &'static str,
                w: &mut #rt::codec::StageWriter<'_>,
            ) -> ::core::result::Result<(), #rt::CheckpointError> {
                #rt::delta::Tracked::write_delta(&self.state, since, name, w)
            }
            fn apply_delta(&mut self, delta: Self::Delta) {
                #rt::delta::Tracked::apply_delta(&mut self.state, delta)
            }
        }

        impl #rt::Checkpointable for #stage {
            const LAYOUT: u64 = #rt::fingerprint::combine(
                #rt::fingerprint::fnv1a(#sname),
                #state_layout,
            );
        }
    }
}

/// `tokens`, each located at `at` with its hygiene unchanged: diagnostics about them point
/// there (an error about the state not being `Checkpointable` points at the key type).
/// A path whose tokens come from two places is reported over the whole macro.
fn located_at(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| match t {
            TokenTree::Group(g) => {
                let mut inner = Group::new(g.delimiter(), located_at(g.stream(), at));
                inner.set_span(g.span().located_at(at));
                TokenTree::Group(inner)
            }
            mut t => {
                t.set_span(t.span().located_at(at));
                t
            }
        })
        .collect()
}
