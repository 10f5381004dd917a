//! The resolve graph of `cargo metadata`, as far as linking and messages need it: what a
//! module links (its normal dependencies, transitively, not through proc macros or other
//! module crates), what its build reads, and the path from a module to a crate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cargo_metadata::{DependencyKind, Metadata, PackageId};

/// The resolve graph, as far as linking and messages need it.
pub(super) struct Graph<'m> {
    pub(super) meta: &'m Metadata,
    pub(super) modules: BTreeSet<PackageId>,
    pub(super) proc_macros: BTreeSet<PackageId>,
}

impl<'m> Graph<'m> {
    pub(super) fn new(meta: &'m Metadata, module_packages: &[String]) -> Graph<'m> {
        let members: BTreeSet<&PackageId> = meta.workspace_members.iter().collect();
        let modules = meta
            .packages
            .iter()
            .filter(|p| members.contains(&p.id) && module_packages.contains(&p.name.to_string()))
            .map(|p| p.id.clone())
            .collect();
        let proc_macros = meta
            .packages
            .iter()
            .filter(|p| p.targets.iter().any(|t| t.is_proc_macro()))
            .map(|p| p.id.clone())
            .collect();
        Graph {
            meta,
            modules,
            proc_macros,
        }
    }

    pub(super) fn package_named(&self, name: &str) -> Option<&'m cargo_metadata::Package> {
        let members: BTreeSet<&PackageId> = self.meta.workspace_members.iter().collect();
        self.meta
            .packages
            .iter()
            .find(|p| p.name.as_str() == name && members.contains(&p.id))
    }

    pub(super) fn package(&self, id: &PackageId) -> Option<&'m cargo_metadata::Package> {
        self.meta.packages.iter().find(|p| &p.id == id)
    }

    /// Dependencies of `id` of the given kinds, skipping module crates (kbuild's).
    pub(super) fn deps(&self, id: &PackageId, kinds: &[DependencyKind]) -> Vec<&'m PackageId> {
        let Some(resolve) = &self.meta.resolve else {
            return vec![];
        };
        let Some(node) = resolve.nodes.iter().find(|n| &n.id == id) else {
            return vec![];
        };
        node.deps
            .iter()
            .filter(|d| {
                d.dep_kinds.is_empty() || d.dep_kinds.iter().any(|k| kinds.contains(&k.kind))
            })
            .map(|d| &d.pkg)
            .filter(|p| !self.modules.contains(p))
            .collect()
    }

    /// What a module links: its normal dependencies, transitively, not through proc macros.
    pub(super) fn link_closure(&self, root: &PackageId) -> BTreeSet<PackageId> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&PackageId> = self.deps(root, &[DependencyKind::Normal]).into();
        while let Some(p) = queue.pop_front() {
            if self.proc_macros.contains(p) || !seen.insert(p.clone()) {
                continue;
            }
            queue.extend(self.deps(p, &[DependencyKind::Normal]));
        }
        seen
    }

    /// Everything a module's build reads (normal and build dependencies, proc macros too).
    pub(super) fn full_closure(&self, root: &PackageId) -> BTreeSet<PackageId> {
        let kinds = [DependencyKind::Normal, DependencyKind::Build];
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&PackageId> = self.deps(root, &kinds).into();
        while let Some(p) = queue.pop_front() {
            if seen.insert(p.clone()) {
                queue.extend(self.deps(p, &kinds));
            }
        }
        seen
    }

    /// `blink -> foo -> bar`: the shortest dependency path from `root` to `to`.
    pub(super) fn path(&self, root: &PackageId, to: &PackageId) -> String {
        let kinds = [DependencyKind::Normal, DependencyKind::Build];
        let mut prev: BTreeMap<&PackageId, &PackageId> = BTreeMap::new();
        let mut queue = VecDeque::from([root]);
        let mut seen = BTreeSet::from([root]);
        while let Some(p) = queue.pop_front() {
            if p == to {
                break;
            }
            for d in self.deps(p, &kinds) {
                if seen.insert(d) {
                    prev.insert(d, p);
                    queue.push_back(d);
                }
            }
        }
        let mut names = vec![self.name(to)];
        let mut at = to;
        while let Some(p) = prev.get(at) {
            names.push(self.name(p));
            at = p;
        }
        if at != root {
            names.push(self.name(root));
        }
        names.reverse();
        names.join(" -> ")
    }

    pub(super) fn name(&self, id: &PackageId) -> String {
        self.package(id)
            .map(|p| p.name.to_string())
            .unwrap_or_else(|| id.repr.clone())
    }
}
