/*
 * The rule builder and the service: the club's catalogue, the debounced preview, and
 * its errors shown at their rows. Methods of RuleBuilder (rule-builder.js), mixed into
 * it.
 */

import { DEBOUNCE_MS, isBranch, isBlank, element } from "./common.js";

export class Preview {
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
            if (sequence === this.sequence) this.showOutcome("The count failed: " + error, "–", []);
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
            body.count === 1 ? "1 member matches" : `${body.count.toLocaleString()} members match`;
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
            if (isBranch(node) && keys[at] === "conditions" && /^\d+$/.test(keys[at + 1] || "")) {
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
