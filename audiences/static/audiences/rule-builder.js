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
 *
 * ES modules, not classic scripts sharing a namespace object: each part imports what it
 * uses by name, so nothing depends on the order of the form's <script> tags or on a
 * global, and the widget's Media names this entry file alone (type="module", which also
 * defers it). The parts are imported relative to this file: the static files storage
 * keeps their names (a hashing storage would need its JS module import support).
 * RuleBuilder's methods are written in rule-builder/ by concern and mixed into it.
 */
import { DEFAULT_LEAF } from "./rule-builder/common.js";
import { Preview } from "./rule-builder/preview.js";
import { Rows } from "./rule-builder/rows.js";
import { Rules } from "./rule-builder/rules.js";
import { Values } from "./rule-builder/values.js";

let builders = 0;

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
}

// The parts' methods, as if written in the class above.
for (const part of [Rules, Rows, Values, Preview]) {
    for (const name of Object.getOwnPropertyNames(part.prototype)) {
        if (name !== "constructor") {
            const method = Object.getOwnPropertyDescriptor(part.prototype, name);
            Object.defineProperty(RuleBuilder.prototype, name, method);
        }
    }
}

function start() {
    document.querySelectorAll(".rule-builder").forEach((root) => new RuleBuilder(root));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
