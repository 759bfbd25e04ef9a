/*
 * The rule builder of audience conditions (audiences.widgets.RuleBuilderWidget).
 *
 * The form's JSON textarea stays the field that is submitted: the builder shows the rule
 * it holds as rows and nested groups, and writes every change back into it. Conditions
 * are kept as the very objects parsed from the JSON and changed in place, so whatever the
 * builder does not touch (keys it does not know, the text itself until something is
 * changed) is kept as it was. A rule the builder cannot show opens as JSON, with a note.
 * The service is the one validator: each change is previewed (debounced), and the
 * preview's count, plain words and errors (each at its row) are shown under the builder.
 *
 * No build step: this file is served as it is. Formatted with Prettier (print width 100,
 * tab width 4).
 */
"use strict";
(function () {
    const BRANCHES = ["and", "or", "not"];
    const BRANCH_LABELS = { and: "ALL of these", or: "ANY of these", not: "NOT (all of these)" };
    const JOINERS = { and: "and", or: "or", not: "and" };
    const OPERATOR_LABELS = {
        array: {
            any: "includes any of",
            all: "includes all of",
            none: "includes none of",
            empty: "is empty",
            not_empty: "is not empty",
        },
        string: {
            eq: "is",
            not_eq: "is not",
            in: "is one of",
            not_in: "is none of",
            match: "contains",
            starts_with: "starts with",
            present: "is present",
            blank: "is blank",
        },
        number: {
            eq: "equals",
            not_eq: "does not equal",
            gt: "is greater than",
            gte: "is at least",
            lt: "is less than",
            lte: "is at most",
            between: "is between",
        },
        date: {
            eq: "is on",
            before: "is before",
            after: "is after",
            between: "is between",
            within_last_days: "is within the last",
            more_than_days_ago: "is more than",
            anniversary_within_days: "has its anniversary within the next",
        },
        boolean: { eq: "is" },
    };
    const GROUP_OPERATOR_LABELS = {
        any: "is in any of",
        all: "is in all of",
        none: "is in none of",
        empty: "is in no group",
        not_empty: "is in some group",
    };
    const DAY_SUFFIXES = {
        within_last_days: "days",
        more_than_days_ago: "days ago",
        anniversary_within_days: "days",
    };
    const TYPE_LABELS = {
        string: "text",
        number: "number",
        date: "date",
        boolean: "yes/no",
        array: "list",
    };
    const DEFAULT_LEAF = {
        condition_group: "member_properties",
        type: "string",
        field: "email",
        operator: "eq",
        value: "",
    };
    const OTHER = "other";
    const DEBOUNCE_MS = 400;
    const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;
    const DAY = /^\d{4}-\d{2}-\d{2}$/;
    let builders = 0;

    function isObject(value) {
        return value !== null && typeof value === "object" && !Array.isArray(value);
    }

    function isBranch(node) {
        return isObject(node) && BRANCHES.includes(node.operator);
    }

    function isDay(value) {
        if (typeof value !== "string" || !DAY.test(value)) return false;
        const day = new Date(value + "T00:00:00Z");
        return !isNaN(day) && day.toISOString().slice(0, 10) === value;
    }

    // What an empty field holds: nothing, or the "null" a form shows for no value.
    function isBlank(text) {
        return text.trim() === "" || text.trim() === "null";
    }

    function isEmpty(value) {
        return value === null || value === undefined;
    }

    function isWhole(value) {
        return Number.isInteger(value) && value >= 0;
    }

    function element(tag, attributes, ...children) {
        const node = document.createElement(tag);
        for (const [name, value] of Object.entries(attributes || {})) {
            if (value === null || value === undefined || value === false) continue;
            if (name === "text") node.textContent = value;
            else if (name in node && typeof value !== "string") node[name] = value;
            else node.setAttribute(name, value === true ? "" : value);
        }
        for (const child of children) {
            if (child !== null && child !== undefined) node.append(child);
        }
        return node;
    }

    function option(value, label, selected) {
        return element("option", { value: value, text: label, selected: Boolean(selected) });
    }

    // As the service takes conditions: a single condition object where a list is expected
    // (the top, a group's conditions) is a list of one.
    function asConditionList(data) {
        const list = isObject(data) ? [data] : data;
        if (Array.isArray(list)) {
            for (const node of list) {
                if (isBranch(node) && "conditions" in node) {
                    node.conditions = asConditionList(node.conditions);
                }
            }
        }
        return list;
    }

    // JSON.parse, telling whole numbers that JavaScript cannot hold exactly (ids past 2^53),
    // where the browser gives the reviver the source text.
    function parseJson(text) {
        let inexact = false;
        const data = JSON.parse(text, function (key, value, context) {
            if (
                typeof value === "number" &&
                context &&
                /^-?\d+$/.test(context.source) &&
                !Number.isSafeInteger(value)
            ) {
                inexact = true;
            }
            return value;
        });
        return { data: data, inexact: inexact };
    }

    class RuleBuilder {
        constructor(root) {
            this.root = root;
            this.config = JSON.parse(root.dataset.config);
            this.grammar = this.config.grammar;
            // The grammar matches a key against the whole name.
            this.keyPattern = new RegExp("^(?:" + this.grammar.key_pattern + ")$");
            this.textarea = root.querySelector(".rb-json textarea");
            this.form = root.closest("form");
            this.tree = root.querySelector(".rb-tree");
            this.note = root.querySelector(".rb-note");
            this.switcher = root.querySelector(".rb-switch");
            this.words = root.querySelector(".rb-words-text");
            this.count = root.querySelector(".rb-count");
            this.prefix = "rb" + ++builders;
            this.clubFields = [];
            this.groups = null;
            this.sampled = null;
            this.rule = null;
            this.rows = new Map();
            this.errors = { text: null, list: [] };
            // Rows added and not yet filled in: their errors wait until the user has typed a
            // value or left the row (or tries to save), not shown the moment a row appears.
            this.untouched = new Set();
            this.sequence = 0;
            this.timer = null;
            this.clubSelect =
                this.config.club === null && this.form
                    ? this.form.querySelector("select[name=club]")
                    : null;

            root.querySelector(".rb-toolbar").hidden = false;
            root.querySelector(".rb-summary").hidden = false;
            this.switcher.addEventListener("click", () => this.toggle());
            this.textarea.addEventListener("input", () => {
                // What the note said of the JSON may no longer hold; switching says again.
                this.note.hidden = true;
                this.schedule();
            });
            if (this.form) {
                this.form.addEventListener("submit", () => this.touch(...this.untouched));
            }
            if (this.clubSelect) {
                this.clubSelect.addEventListener("change", () => {
                    this.loadCatalogue();
                    this.schedule();
                });
            }
            const shown = this.read(this.textarea.value);
            if (shown.rule) {
                this.showBuilder(shown.rule);
            } else {
                this.showJson(
                    "The builder cannot show this rule: " +
                        shown.problem +
                        ". It is shown as JSON; saving keeps it as it is.",
                );
            }
            this.loadCatalogue();
            this.preview(false);
        }

        // Reading the JSON ----------------------------------------------------------------

        read(text) {
            if (isBlank(text)) return { rule: [] };
            let parsed;
            try {
                parsed = parseJson(text);
            } catch (error) {
                return { problem: "it is not valid JSON (" + error.message + ")" };
            }
            if (parsed.inexact) {
                return { problem: "it holds a whole number too large to edit here exactly" };
            }
            const rule = asConditionList(parsed.data);
            if (!Array.isArray(rule)) {
                return { problem: "it is not a list of conditions" };
            }
            const problem = this.unshowable(rule, "");
            return problem ? { problem: problem } : { rule: rule };
        }

        unshowable(nodes, prefix) {
            for (let index = 0; index < nodes.length; index++) {
                const node = nodes[index];
                const where = prefix + (index + 1);
                if (isBranch(node)) {
                    if (!Array.isArray(node.conditions)) {
                        return "group " + where + " has no list of conditions";
                    }
                    const inner = this.unshowable(node.conditions, where + ".");
                    if (inner) return inner;
                    continue;
                }
                const problem = this.leafProblem(node);
                if (problem) return "condition " + where + " " + problem;
            }
            return null;
        }

        leafProblem(node) {
            if (!isObject(node)) return "is not an object";
            const group =
                node.condition_group === undefined ? "member_properties" : node.condition_group;
            if (group !== "member_properties" && group !== "consents") {
                return (
                    "has the condition group " +
                    JSON.stringify(group) +
                    ", which the builder does not know"
                );
            }
            if (node.type === undefined) return "has no type";
            const operators = this.grammar.operators[node.type];
            if (!operators) {
                return (
                    "has the type " +
                    JSON.stringify(node.type) +
                    ", which the builder does not know"
                );
            }
            if (node.operator === undefined) return "has no operator";
            if (!operators.includes(node.operator)) {
                return (
                    "has the operator " +
                    JSON.stringify(node.operator) +
                    ", which a " +
                    node.type +
                    " condition does not have"
                );
            }
            if (typeof node.field !== "string" || node.field === "") return "names no field";
            const name = this.fieldName(node);
            if (!this.keyPattern.test(name)) {
                return (
                    "names the field " + JSON.stringify(node.field) + ", which is not a field name"
                );
            }
            if (group === "consents" && node.type !== "boolean")
                return "is a consent that is not yes/no";
            const standard = group === "member_properties" && this.standard(node.field);
            if (standard && standard.type !== node.type) {
                return (
                    "reads " +
                    node.field +
                    " as " +
                    TYPE_LABELS[node.type] +
                    ", which is " +
                    TYPE_LABELS[standard.type]
                );
            }
            if (!this.showable(node)) return "has a value the builder cannot show";
            return null;
        }

        // Fields ------------------------------------------------------------------------

        standard(field) {
            return this.grammar.fields.find((choice) => choice.field === field);
        }

        fieldName(node) {
            return node.condition_group === "consents"
                ? node.field.replace(/^consents\./, "")
                : node.field;
        }

        fieldKey(node) {
            if (node.condition_group === "consents") return "consents:" + this.fieldName(node);
            return "member_properties:" + node.field + ":" + node.type;
        }

        // Every field the picker offers: the standard ones, the club's, and those the rule
        // names that neither has (a key found in no sampled member, a consent of old).
        choices() {
            const seen = new Map();
            const add = (choice) => {
                const key = this.fieldKey(choice);
                if (!seen.has(key)) seen.set(key, { ...choice, key: key });
            };
            this.grammar.fields.forEach(add);
            this.clubFields.forEach(add);
            const walk = (nodes) =>
                nodes.forEach((node) => {
                    if (isBranch(node)) return walk(node.conditions);
                    const consent = node.condition_group === "consents";
                    add({
                        field: consent ? "consents." + this.fieldName(node) : node.field,
                        type: node.type,
                        condition_group: consent ? "consents" : "member_properties",
                        label: consent
                            ? "consent " + this.fieldName(node).replace(/_/g, " ")
                            : node.field.replace(/_/g, " "),
                        kind: consent ? "consent" : "property",
                    });
                });
            walk(this.rule || []);
            return [...seen.values()];
        }

        choiceOf(node) {
            const key = this.fieldKey(node);
            return this.choices().find((choice) => choice.key === key);
        }

        // Values ------------------------------------------------------------------------

        valueKind(node) {
            const operator = node.operator;
            if (this.grammar.no_value.includes(operator)) return "none";
            switch (node.type) {
                case "string":
                    return operator === "in" || operator === "not_in" ? "list" : "text";
                case "number":
                    return operator === "between" ? "number-range" : "number";
                case "date":
                    if (operator === "between") return "date-range";
                    return ["eq", "before", "after"].includes(operator) ? "date" : "days";
                case "boolean":
                    return "boolean";
                default:
                    return node.field === "members_group_ids" ? "groups" : "list";
            }
        }

        numericItems(node) {
            if (node.type !== "array") return false;
            if (Array.isArray(node.value) && node.value.length) {
                return node.value.every((item) => typeof item === "number");
            }
            const choice = this.choiceOf(node);
            return Boolean(choice && choice.items === "number");
        }

        // A list item as the builder reads it back from its line.
        listItem(line, numeric) {
            return numeric && NUMBER.test(line) ? Number(line) : line;
        }

        // True when the value's inputs can show it as it is, so that nothing is lost.
        showable(node) {
            const value = node.value;
            switch (this.valueKind(node)) {
                case "none":
                    return true;
                case "text":
                    return isEmpty(value) || (typeof value === "string" && !/[\r\n]/.test(value));
                case "list": {
                    if (isEmpty(value)) return true;
                    if (!Array.isArray(value)) return false;
                    const numeric = this.numericItems(node);
                    return value.every(
                        (item) =>
                            (typeof item === "string" || typeof item === "number") &&
                            !/[\r\n]/.test(String(item)) &&
                            String(item).trim() === String(item) &&
                            String(item) !== "" &&
                            this.listItem(String(item), numeric) === item,
                    );
                }
                case "number":
                    return isEmpty(value) || Number.isFinite(value);
                case "number-range":
                    return (
                        Array.isArray(value) &&
                        value.length === 2 &&
                        value.every((item) => isEmpty(item) || Number.isFinite(item))
                    );
                case "date":
                    return isEmpty(value) || isDay(value);
                case "date-range":
                    return (
                        Array.isArray(value) &&
                        value.length === 2 &&
                        value.every((item) => isEmpty(item) || isDay(item))
                    );
                case "days":
                    return isEmpty(value) || isWhole(value);
                case "boolean":
                    return isEmpty(value) || typeof value === "boolean";
                default:
                    return (
                        isEmpty(value) ||
                        (Array.isArray(value) && value.every(Number.isSafeInteger))
                    );
            }
        }

        defaultValue(kind) {
            return {
                text: "",
                list: [],
                groups: [],
                number: null,
                days: null,
                date: null,
                boolean: true,
                "number-range": [null, null],
                "date-range": [null, null],
            }[kind];
        }

        // Changes -----------------------------------------------------------------------

        setField(node, choice) {
            const kind = this.valueKind(node);
            const sameType = choice.type === node.type;
            node.condition_group = choice.condition_group;
            node.type = choice.type;
            node.field = choice.field;
            if (!sameType) node.operator = this.grammar.operators[choice.type][0];
            if (!sameType || kind !== this.valueKind(node)) this.resetValue(node);
        }

        setOperator(node, operator) {
            const kind = this.valueKind(node);
            node.operator = operator;
            if (kind !== this.valueKind(node)) this.resetValue(node);
        }

        resetValue(node) {
            const kind = this.valueKind(node);
            if (kind === "none") delete node.value;
            else node.value = this.defaultValue(kind);
        }

        changed(options) {
            this.write();
            if (options && options.render) this.render(options.focus);
            this.schedule();
        }

        write() {
            this.textarea.value = this.rule.length
                ? JSON.stringify(this.rule, null, 2)
                : this.config.empty;
        }

        newLeaf() {
            return { ...DEFAULT_LEAF };
        }

        // Modes -------------------------------------------------------------------------

        showBuilder(rule) {
            this.rule = rule;
            this.untouched.clear();
            this.mode = "builder";
            this.note.hidden = true;
            this.tree.hidden = false;
            this.root.querySelector(".rb-json").hidden = true;
            this.switcher.textContent = "Edit as JSON";
            this.render();
        }

        showJson(note) {
            this.mode = "json";
            this.rule = null;
            this.tree.hidden = true;
            this.tree.replaceChildren();
            this.rows.clear();
            this.root.querySelector(".rb-json").hidden = false;
            this.switcher.textContent = "Edit with the builder";
            this.note.hidden = !note;
            this.note.textContent = note || "";
        }

        toggle() {
            if (this.mode === "builder") {
                this.showJson(null);
                this.textarea.focus();
                return;
            }
            const shown = this.read(this.textarea.value);
            if (!shown.rule) {
                this.note.hidden = false;
                this.note.textContent =
                    "The builder cannot show this rule: " +
                    shown.problem +
                    ". Change it here, or keep it as JSON.";
                return;
            }
            this.showBuilder(shown.rule);
            this.switcher.focus();
            this.schedule();
        }

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

        renderValue(node, path, what) {
            const kind = this.valueKind(node);
            const label = "Value of " + what;
            const key = path + ":value";
            const set = (value) => {
                node.value = value;
                this.untouched.delete(node);
                this.changed();
            };
            const box = element("span", { class: "rb-value" });
            switch (kind) {
                case "none":
                    return null;
                case "text": {
                    const choice = this.choiceOf(node);
                    const input = element("input", {
                        type: "text",
                        class: "vTextField",
                        "aria-label": label,
                        "data-key": key,
                        value: typeof node.value === "string" ? node.value : "",
                    });
                    if (choice && choice.choices) {
                        const listId = this.prefix + "-choices-" + path;
                        input.setAttribute("list", listId);
                        box.append(
                            element(
                                "datalist",
                                { id: listId },
                                ...choice.choices.map((value) => option(value, value, false)),
                            ),
                        );
                    }
                    input.addEventListener("input", () => set(input.value));
                    box.prepend(input);
                    return box;
                }
                case "list": {
                    const numeric = this.numericItems(node);
                    const area = element("textarea", {
                        rows: 3,
                        class: "rb-list-values",
                        "aria-label": label + ", one per line",
                        "data-key": key,
                        placeholder: "one value per line",
                    });
                    area.value = Array.isArray(node.value) ? node.value.join("\n") : "";
                    area.addEventListener("input", () =>
                        set(
                            area.value
                                .split("\n")
                                .map((line) => line.trim())
                                .filter((line) => line !== "")
                                .map((line) => this.listItem(line, numeric)),
                        ),
                    );
                    box.append(area);
                    return box;
                }
                case "number":
                case "days": {
                    const input = this.numberInput(node.value, label, key, kind === "days");
                    input.addEventListener("input", () => set(this.number(input)));
                    box.append(input);
                    if (kind === "days")
                        box.append(
                            element("span", {
                                class: "rb-unit",
                                text: DAY_SUFFIXES[node.operator],
                            }),
                        );
                    return box;
                }
                case "number-range":
                case "date-range": {
                    const pair = Array.isArray(node.value) ? node.value : [null, null];
                    const inputs = [0, 1].map((end) => {
                        const which = end ? "to" : "from";
                        return kind === "date-range"
                            ? this.dateInput(pair[end], `${label}, ${which}`, `${key}-${which}`)
                            : this.numberInput(
                                  pair[end],
                                  `${label}, ${which}`,
                                  `${key}-${which}`,
                                  false,
                              );
                    });
                    const read = (input) =>
                        kind === "date-range" ? input.value || null : this.number(input);
                    for (const input of inputs) {
                        input.addEventListener("input", () => set(inputs.map(read)));
                    }
                    box.append(
                        inputs[0],
                        element("span", { class: "rb-unit", text: "and" }),
                        inputs[1],
                    );
                    return box;
                }
                case "date": {
                    const input = this.dateInput(node.value, label, key);
                    input.addEventListener("input", () => set(input.value || null));
                    box.append(input);
                    return box;
                }
                case "boolean": {
                    const consent = node.condition_group === "consents";
                    const select = element("select", { "aria-label": label, "data-key": key });
                    if (isEmpty(node.value)) select.append(option("", "choose…", true));
                    select.append(
                        option("true", consent ? "given" : "true", node.value === true),
                        option("false", consent ? "refused" : "false", node.value === false),
                    );
                    select.addEventListener("change", () => set(select.value === "true"));
                    box.append(select);
                    return box;
                }
                default:
                    return this.renderGroupPicker(node, path, what, box);
            }
        }

        numberInput(value, label, key, whole) {
            return element("input", {
                type: "number",
                step: whole ? "1" : "any",
                min: whole ? "0" : null,
                class: "rb-number",
                "aria-label": label,
                "data-key": key,
                value: isEmpty(value) ? "" : String(value),
            });
        }

        dateInput(value, label, key) {
            return element("input", {
                type: "date",
                class: "rb-date",
                "aria-label": label,
                "data-key": key,
                value: isEmpty(value) ? "" : value,
            });
        }

        // An empty or unreadable box is null, which the service refuses at this row.
        number(input) {
            return input.value === "" || !Number.isFinite(input.valueAsNumber)
                ? null
                : input.valueAsNumber;
        }

        renderGroupPicker(node, path, what, box) {
            const chosen = Array.isArray(node.value) ? node.value : [];
            const names = new Map((this.groups || []).map((group) => [group.id, group.name]));
            const counts = new Map();
            for (const group of this.groups || [])
                counts.set(group.name, (counts.get(group.name) || 0) + 1);
            const named = (id) => {
                if (!names.has(id)) return `#${id} (not a group you can pick here)`;
                const name = names.get(id);
                return counts.get(name) > 1 ? `${name} (#${id})` : name;
            };
            const list = element("ul", { class: "rb-chips", "aria-label": "Groups of " + what });
            chosen.forEach((id, position) => {
                const remove = element("button", {
                    type: "button",
                    class: "rb-chip-remove",
                    text: "×",
                    "aria-label": `Remove group ${named(id)} from ${what}`,
                    "data-key": `${path}:chip-${id}`,
                });
                remove.addEventListener("click", () => {
                    node.value = chosen.filter((_id, at) => at !== position);
                    this.untouched.delete(node);
                    this.changed({ render: true, focus: path + ":value" });
                });
                list.append(
                    element(
                        "li",
                        { class: "rb-chip" },
                        element("span", { text: named(id) }),
                        remove,
                    ),
                );
            });
            // Choosing a group and adding it are two steps: moving through a select's
            // options with the keyboard changes it at each step.
            const picker = element("select", {
                "aria-label": "Group to add to " + what,
                "data-key": path + ":value",
                class: "rb-group-picker",
            });
            const add = element("button", {
                type: "button",
                class: "button rb-add-group",
                text: "Add",
                "aria-label": "Add the chosen group to " + what,
                "data-key": path + ":add-group",
            });
            if (this.groups === null) {
                picker.append(option("", "choose the club first", true));
                picker.disabled = true;
                add.disabled = true;
            } else {
                picker.append(option("", "choose a group…", true));
                for (const group of this.groups) {
                    if (!chosen.includes(group.id))
                        picker.append(option(String(group.id), named(group.id), false));
                }
            }
            add.addEventListener("click", () => {
                if (!picker.value) return;
                node.value = [...chosen, Number(picker.value)];
                this.untouched.delete(node);
                this.changed({ render: true, focus: path + ":value" });
            });
            box.append(list, picker, add);
            return box;
        }

        // Focus moving from the row to another control outside it; not the focus lost when
        // the tree is drawn again.
        touchOnLeaving(row, node) {
            row.addEventListener("focusout", (event) => {
                if (event.relatedTarget && !row.contains(event.relatedTarget)) this.touch(node);
            });
        }

        // The rows' held-back errors, shown now.
        touch(...nodes) {
            let touched = false;
            for (const node of nodes) touched = this.untouched.delete(node) || touched;
            if (touched) this.showErrors();
        }

        // The catalogue and the preview ------------------------------------------------------

        clubId() {
            if (this.config.club !== null) return String(this.config.club);
            return this.clubSelect ? this.clubSelect.value : "";
        }

        async loadCatalogue() {
            const club = this.clubId();
            if (!club) {
                this.clubFields = [];
                this.groups = null;
                this.sampled = null;
                if (this.mode === "builder") this.render();
                return;
            }
            const query = new URLSearchParams({ club: club });
            const target = this.config.target;
            if (target.id !== null) query.set(target.param, String(target.id));
            try {
                const response = await fetch(this.config.catalogue + "?" + query, {
                    credentials: "same-origin",
                    headers: { Accept: "application/json" },
                });
                const body = await response.json();
                if (!response.ok || club !== this.clubId()) return;
                this.clubFields = body.fields;
                this.groups = body.groups;
                this.sampled = body.sampled;
            } catch (error) {
                this.note.hidden = false;
                this.note.textContent =
                    "The club's properties and groups could not be loaded: " + error;
                return;
            }
            if (this.mode === "builder") this.render();
        }

        schedule() {
            clearTimeout(this.timer);
            this.timer = setTimeout(() => this.preview(), DEBOUNCE_MS);
        }

        // Count who matches the rule as it is; or, not counting (as a page opens, before
        // any edit, so that opening a page costs no scan of the club), only check it and
        // say it in words, offering a count.
        async preview(counting = true) {
            const sequence = ++this.sequence;
            const text = this.textarea.value;
            const club = this.clubId();
            if (isBlank(text) && this.config.empty === "") {
                this.showOutcome(
                    "No conditions: a manual group, whose members are added by hand.",
                    "–",
                    [],
                );
                return;
            }
            if (!club) {
                this.showOutcome("Choose a club to count its members.", "–", []);
                return;
            }
            const data = new FormData();
            data.append(
                "csrfmiddlewaretoken",
                this.form.querySelector("[name=csrfmiddlewaretoken]").value,
            );
            data.append("conditions", text);
            data.append("club", club);
            const target = this.config.target;
            if (target.id !== null) data.append(target.param, String(target.id));
            if (!counting) data.append("count", "0");
            this.count.textContent = counting ? "Counting…" : "Checking…";
            this.root.setAttribute("aria-busy", "true");
            let response;
            let body;
            try {
                response = await fetch(this.config.preview, {
                    method: "POST",
                    body: data,
                    credentials: "same-origin",
                    headers: { Accept: "application/json" },
                });
                body = await response.json();
            } catch (error) {
                if (sequence === this.sequence)
                    this.showOutcome("The count failed: " + error, "–", []);
                return;
            }
            if (sequence !== this.sequence) return;
            if (!response.ok) {
                this.showOutcome(body.error, "–", body.errors || []);
                return;
            }
            if (!counting) {
                const now = element("button", {
                    type: "button",
                    class: "button rb-count-now",
                    text: "Count the members",
                });
                now.addEventListener("click", () => this.preview());
                this.showOutcome(now, body.words, []);
                return;
            }
            let count =
                body.count === 1
                    ? "1 member matches"
                    : `${body.count.toLocaleString()} members match`;
            if (body.joining !== undefined) {
                count +=
                    ` (${body.joining.toLocaleString()} would join,` +
                    ` ${body.leaving.toLocaleString()} would leave)`;
            }
            this.showOutcome(count + ". Nothing is saved until you save.", body.words, []);
        }

        showOutcome(count, words, errors) {
            this.root.removeAttribute("aria-busy");
            this.errors = { text: this.textarea.value, list: errors };
            this.words.textContent = words;
            if (!this.showErrors()) this.count.replaceChildren(count);
        }

        // Show the errors of the previewed rule, if it is still the rule, at their rows and
        // in the count; return whether there were any.
        showErrors() {
            if (this.errors.text !== this.textarea.value) return false;
            const { unplaced, placed, held } = this.mark(this.errors.list);
            this.count.classList.toggle("rb-failed", placed + unplaced.length > 0);
            if (unplaced.length) {
                this.count.textContent = unplaced
                    .map((problem) => this.describe(problem.path, problem.message))
                    .join(" ");
            } else if (placed) {
                this.count.textContent =
                    placed === 1
                        ? "Fix the condition marked above to count the members."
                        : "Fix the conditions marked above to count the members.";
            } else if (held) {
                this.count.textContent =
                    held === 1
                        ? "Fill in the new condition to count the members."
                        : "Fill in the new conditions to count the members.";
            } else {
                return false;
            }
            return true;
        }

        // Clear the rows' errors, then show these; return those no row takes, and how many
        // were shown at a row and held back at a row not yet filled in.
        mark(errors) {
            for (const { row, error, controls } of this.rows.values()) {
                row.classList.remove("rb-invalid");
                error.hidden = true;
                error.textContent = "";
                for (const control of controls()) {
                    control.removeAttribute("aria-invalid");
                    control.removeAttribute("aria-describedby");
                }
            }
            const outcome = { unplaced: [], placed: 0, held: 0 };
            for (const problem of errors) {
                const shown = this.place(problem);
                if (shown === null) outcome.unplaced.push(problem);
                else if (shown) outcome.placed++;
                else outcome.held++;
            }
            return outcome;
        }

        describe(keys, message) {
            const where = keys.map((key) => (/^\d+$/.test(key) ? "item " + key : key)).join(" > ");
            return where ? where + ": " + message : message;
        }

        // Show an error of the preview at the row its path leads to: true if shown, false if
        // held back (the row is not filled in yet), null if no row takes it.
        place(problem) {
            if (this.mode !== "builder") return null;
            const keys = problem.path;
            let nodes = this.rule;
            let node = null;
            let at = 0;
            while (at < keys.length && /^\d+$/.test(keys[at])) {
                node = nodes[Number(keys[at])];
                at++;
                if (
                    isBranch(node) &&
                    keys[at] === "conditions" &&
                    /^\d+$/.test(keys[at + 1] || "")
                ) {
                    nodes = node.conditions;
                    at++;
                    continue;
                }
                break;
            }
            const shown = node && this.rows.get(node);
            if (!shown) return null;
            if (this.untouched.has(node)) return false;
            const text = this.describe(keys.slice(at), problem.message);
            shown.error.textContent = shown.error.textContent
                ? shown.error.textContent + " " + text
                : text;
            shown.error.hidden = false;
            shown.row.classList.add("rb-invalid");
            for (const control of shown.controls()) {
                control.setAttribute("aria-invalid", "true");
                control.setAttribute("aria-describedby", shown.error.id);
            }
            return true;
        }
    }

    function start() {
        document.querySelectorAll(".rule-builder").forEach((root) => new RuleBuilder(root));
    }

    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
})();
