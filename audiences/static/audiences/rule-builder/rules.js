/*
 * The rule builder's reading of conditions: which rules it can show, the fields it
 * offers, and the kind of value each operator takes. Methods of RuleBuilder
 * (rule-builder.js), mixed into it.
 */

import {
    TYPE_LABELS,
    NUMBER,
    isObject,
    isBranch,
    isDay,
    isBlank,
    isEmpty,
    isWhole,
    asConditionList,
    parseJson,
} from "./common.js";

export class Rules {
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
                "has the type " + JSON.stringify(node.type) + ", which the builder does not know"
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
            return "names the field " + JSON.stringify(node.field) + ", which is not a field name";
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
                    isEmpty(value) || (Array.isArray(value) && value.every(Number.isSafeInteger))
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
}
