/*
 * The rule builder's rows: the tree of conditions and groups drawn from the rule, each
 * control writing its change into it. Methods of RuleBuilder (rule-builder.js), mixed
 * into it.
 */

import {
    BRANCHES,
    BRANCH_LABELS,
    JOINERS,
    OPERATOR_LABELS,
    GROUP_OPERATOR_LABELS,
    TYPE_LABELS,
    OTHER,
    isBranch,
    element,
    option,
} from "./common.js";

export class Rows {
    // Rendering ---------------------------------------------------------------------

    render(focus) {
        const active = document.activeElement;
        const keep = focus || (this.tree.contains(active) ? active.dataset.key : null);
        this.rows.clear();
        this.tree.replaceChildren(this.renderRoot());
        // Errors of the previewed text go back to their rows while the text is the same.
        if (this.errors.text === this.textarea.value) this.mark(this.errors.list);
        if (keep) {
            const target = this.tree.querySelector(`[data-key="${CSS.escape(keep)}"]`);
            if (target) target.focus();
        }
    }

    renderRoot() {
        const caption = element("p", {
            class: "rb-caption",
            id: this.prefix + "-caption",
            text: this.rule.length
                ? "Members match when ALL of these hold:"
                : this.config.empty === ""
                  ? "No conditions: the group is manual. Add a condition to make it automatic."
                  : "No conditions: every member of the club matches.",
        });
        return element(
            "div",
            { class: "rb-root", role: "group", "aria-labelledby": this.prefix + "-caption" },
            caption,
            this.renderList(this.rule, "", "and"),
            this.renderActions(this.rule, "", 0),
        );
    }

    renderList(nodes, prefix, operator) {
        const list = element("ul", { class: "rb-list" });
        nodes.forEach((node, index) => {
            const path = prefix + (index + 1);
            if (index > 0) {
                list.append(
                    element("li", {
                        class: "rb-joiner",
                        "aria-hidden": "true",
                        text: JOINERS[operator],
                    }),
                );
            }
            list.append(
                isBranch(node)
                    ? this.renderBranch(node, nodes, index, path)
                    : this.renderLeaf(node, nodes, index, path),
            );
        });
        return list;
    }

    // Each button's name starts with its visible text (what speech input users say),
    // then says where it adds; what the kind of group means is its description.
    renderActions(nodes, path, depth) {
        const where = path ? " to group " + path : "";
        const actions = element("div", { class: "rb-actions" });
        const add = (label, key, make, meaning) => {
            const button = element("button", {
                type: "button",
                class: "button rb-add",
                text: label,
                "data-key": path + ":" + key,
                "aria-label": where ? label + where : null,
                title: meaning,
            });
            button.addEventListener("click", () => {
                const added = make();
                nodes.push(added);
                this.untouched.add(added);
                if (isBranch(added)) {
                    for (const leaf of added.conditions) this.untouched.add(leaf);
                }
                const at = (path ? path + "." : "") + nodes.length;
                this.changed({ render: true, focus: at + ":field" });
            });
            actions.append(button);
        };
        add("Add condition", "add", () => this.newLeaf(), null);
        if (depth < this.grammar.max_depth) {
            add(
                "Add ANY group",
                "add-or",
                () => ({ operator: "or", conditions: [this.newLeaf()] }),
                "A group of conditions of which any must hold",
            );
            add(
                "Add NOT group",
                "add-not",
                () => ({ operator: "not", conditions: [this.newLeaf()] }),
                "A group of conditions that must not all hold",
            );
        }
        return actions;
    }

    removeButton(nodes, index, path, what) {
        const button = element("button", {
            type: "button",
            class: "rb-remove",
            text: what === "group" ? "Remove group" : "Remove",
            "aria-label": "Remove " + what + " " + path,
            "data-key": path + ":remove",
        });
        button.addEventListener("click", () => {
            nodes.splice(index, 1);
            // A group emptied by hand is the user's doing: say so at once.
            for (const added of this.untouched) {
                if (isBranch(added)) this.untouched.delete(added);
            }
            const parent = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
            // The next row takes this one's path; after the last, the group's "Add".
            const next =
                nodes.length > index
                    ? path + (isBranch(nodes[index]) ? ":connective" : ":field")
                    : parent + ":add";
            this.changed({ render: true, focus: next });
        });
        return button;
    }

    renderBranch(node, nodes, index, path) {
        const depth = path.split(".").length;
        const legendId = this.prefix + "-group-" + path;
        const connective = element("select", {
            class: "rb-connective",
            "aria-label": "How the conditions of group " + path + " combine",
            "data-key": path + ":connective",
        });
        for (const operator of BRANCHES) {
            connective.append(
                option(operator, BRANCH_LABELS[operator], operator === node.operator),
            );
        }
        connective.addEventListener("change", () => {
            node.operator = connective.value;
            fieldset.dataset.operator = node.operator;
            for (const joiner of list.querySelectorAll(":scope > .rb-joiner")) {
                joiner.textContent = JOINERS[node.operator];
            }
            this.changed();
        });
        const error = element("p", {
            class: "rb-error",
            id: this.prefix + "-error-" + path,
            hidden: true,
        });
        const list = this.renderList(node.conditions, path + ".", node.operator);
        const fieldset = element(
            "fieldset",
            { class: "rb-group", "data-operator": node.operator, "aria-labelledby": legendId },
            element(
                "legend",
                { id: legendId },
                element("span", { class: "rb-caption", text: "Group " + path + ": " }),
                connective,
            ),
            list,
            element(
                "div",
                { class: "rb-group-actions" },
                this.renderActions(node.conditions, path, depth),
                this.removeButton(nodes, index, path, "group"),
            ),
            error,
        );
        const row = element("li", { class: "rb-row rb-branch", "data-path": path }, fieldset);
        this.touchOnLeaving(row, node);
        this.rows.set(node, { row: row, error: error, controls: () => [connective] });
        return row;
    }

    renderLeaf(node, nodes, index, path) {
        const what = "condition " + path;
        const field = element("select", {
            class: "rb-field",
            "aria-label": "Field of " + what,
            "data-key": path + ":field",
        });
        const choices = this.choices();
        const current = this.fieldKey(node);
        const sections = [
            ["Member", choices.filter((choice) => choice.kind === "standard")],
            [
                this.sampled === null
                    ? "Properties"
                    : `Properties (found in the newest ${this.sampled.toLocaleString()} members)`,
                choices.filter((choice) => choice.kind === "property"),
            ],
            ["Consents", choices.filter((choice) => choice.kind === "consent")],
        ];
        for (const [label, members] of sections) {
            if (!members.length) continue;
            const group = element("optgroup", { label: label });
            for (const choice of members) {
                const shown =
                    choice.kind === "property"
                        ? `${choice.label} (${TYPE_LABELS[choice.type]})`
                        : choice.label;
                group.append(option(choice.key, shown, choice.key === current));
            }
            field.append(group);
        }
        field.append(option(OTHER, "Another property or consent…", false));
        // The operator and the value are drawn again when the field or the operator
        // changes; the select being used stays, so that typing its options' first
        // letters, or moving through them with the arrow keys, goes on working.
        const operatorSlot = element("span", { class: "rb-slot" });
        const valueSlot = element("span", { class: "rb-slot" });
        const drawValue = () => {
            const value = this.renderValue(node, path, what);
            valueSlot.replaceChildren(...(value ? [value] : []));
        };
        const drawOperator = () => {
            const operator = element("select", {
                class: "rb-operator",
                "aria-label": "Operator of " + what,
                "data-key": path + ":operator",
            });
            const labels =
                node.field === "members_group_ids"
                    ? GROUP_OPERATOR_LABELS
                    : OPERATOR_LABELS[node.type];
            for (const name of this.grammar.operators[node.type]) {
                operator.append(option(name, labels[name], name === node.operator));
            }
            operator.addEventListener("change", () => {
                this.setOperator(node, operator.value);
                drawValue();
                this.changed();
            });
            operatorSlot.replaceChildren(operator);
            drawValue();
        };
        const parts = element(
            "div",
            { class: "rb-controls" },
            field,
            operatorSlot,
            valueSlot,
            this.removeButton(nodes, index, path, "condition"),
        );
        field.addEventListener("change", () => {
            const other = parts.querySelector(".rb-other");
            if (other) other.remove();
            if (field.value === OTHER) {
                parts.insertBefore(this.renderOther(node, path, what), operatorSlot);
                return;
            }
            this.setField(
                node,
                choices.find((choice) => choice.key === field.value),
            );
            drawOperator();
            this.changed();
        });
        drawOperator();
        const error = element("p", {
            class: "rb-error",
            id: this.prefix + "-error-" + path,
            hidden: true,
        });
        const row = element("li", { class: "rb-row rb-leaf", "data-path": path }, parts, error);
        this.touchOnLeaving(row, node);
        this.rows.set(node, {
            row: row,
            error: error,
            controls: () => parts.querySelectorAll("select, input, textarea"),
        });
        return row;
    }

    // A property or consent the picker does not list: its name and type, typed in.
    renderOther(node, path, what) {
        const key = element("input", {
            type: "text",
            class: "rb-key vTextField",
            "aria-label": "Name of the property or consent of " + what,
            placeholder: "name",
            "data-key": path + ":key",
        });
        const type = element("select", {
            class: "rb-type",
            "aria-label": "Type of the property of " + what,
            "data-key": path + ":type",
        });
        for (const name of Object.keys(TYPE_LABELS))
            type.append(option(name, TYPE_LABELS[name], false));
        type.append(option("consent", "consent (yes/no)", false));
        const apply = () => {
            const name = key.value.trim();
            if (!name) return;
            const consent = type.value === "consent";
            this.setField(node, {
                field: consent ? "consents." + name : name,
                type: consent ? "boolean" : type.value,
                condition_group: consent ? "consents" : "member_properties",
            });
            this.changed({ render: true, focus: path + ":operator" });
        };
        const use = element("button", {
            type: "button",
            class: "button",
            text: "Use",
            "aria-label": "Use this property for " + what,
            "data-key": path + ":use",
        });
        use.addEventListener("click", apply);
        key.addEventListener("keydown", (event) => {
            if (event.key === "Enter") {
                event.preventDefault();
                apply();
            }
        });
        return element("span", { class: "rb-other" }, key, type, use);
    }
}
