/*
 * What the rule builder's parts share: the labels of the grammar's names, and small
 * helpers over conditions and the page.
 */

export const BRANCHES = ["and", "or", "not"];
export const BRANCH_LABELS = { and: "ALL of these", or: "ANY of these", not: "NOT (all of these)" };
export const JOINERS = { and: "and", or: "or", not: "and" };
export const OPERATOR_LABELS = {
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
export const GROUP_OPERATOR_LABELS = {
    any: "is in any of",
    all: "is in all of",
    none: "is in none of",
    empty: "is in no group",
    not_empty: "is in some group",
};
export const DAY_SUFFIXES = {
    within_last_days: "days",
    more_than_days_ago: "days ago",
    anniversary_within_days: "days",
};
export const TYPE_LABELS = {
    string: "text",
    number: "number",
    date: "date",
    boolean: "yes/no",
    array: "list",
};
export const DEFAULT_LEAF = {
    condition_group: "member_properties",
    type: "string",
    field: "email",
    operator: "eq",
    value: "",
};
export const OTHER = "other";
export const DEBOUNCE_MS = 400;
export const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;
export const DAY = /^\d{4}-\d{2}-\d{2}$/;

export function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
}

export function isBranch(node) {
    return isObject(node) && BRANCHES.includes(node.operator);
}

export function isDay(value) {
    if (typeof value !== "string" || !DAY.test(value)) return false;
    const day = new Date(value + "T00:00:00Z");
    return !isNaN(day) && day.toISOString().slice(0, 10) === value;
}

// What an empty field holds: nothing, or the "null" a form shows for no value.
export function isBlank(text) {
    return text.trim() === "" || text.trim() === "null";
}

export function isEmpty(value) {
    return value === null || value === undefined;
}

export function isWhole(value) {
    return Number.isInteger(value) && value >= 0;
}

export function element(tag, attributes, ...children) {
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

export function option(value, label, selected) {
    return element("option", { value: value, text: label, selected: Boolean(selected) });
}

// As the service takes conditions: a single condition object where a list is expected
// (the top, a group's conditions) is a list of one.
export function asConditionList(data) {
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
export function parseJson(text) {
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
