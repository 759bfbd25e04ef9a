/*
 * The rule builder's value inputs, one kind per operator, and the group picker. Methods
 * of RuleBuilder (rule-builder.js), mixed into it.
 */

import { DAY_SUFFIXES, isEmpty, element, option } from "./common.js";

export class Values {
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
                element("li", { class: "rb-chip" }, element("span", { text: named(id) }), remove),
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
}
