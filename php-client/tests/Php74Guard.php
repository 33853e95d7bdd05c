<?php

declare(strict_types=1);

namespace Cometbox\Tests;

/**
 * Finds PHP 8 syntax and functions in code that must run on PHP 7.4, with
 * the tokenizer of the PHP running the tests (8.x here): match, ?->,
 * attributes, enums, readonly, constructor promotion, named arguments,
 * union, mixed, static and other 8.x types, trailing commas in parameter
 * lists, catch without a variable, $object::class, first-class callables,
 * 0o octals, and PHP 8's new functions and classes.
 */
final class Php74Guard
{
    private const TOKENS = [
        'T_MATCH' => 'match expression',
        'T_NULLSAFE_OBJECT_OPERATOR' => 'nullsafe operator ?->',
        'T_ATTRIBUTE' => 'attribute #[...]',
        'T_ENUM' => 'enum',
        'T_READONLY' => 'readonly',
    ];

    private const FUNCTIONS = [
        'str_contains', 'str_starts_with', 'str_ends_with', 'array_is_list', 'get_debug_type',
        'fdiv', 'get_resource_id', 'preg_last_error_msg', 'array_find', 'array_any', 'array_all',
        'json_validate', 'http_get_last_response_headers',
    ];

    private const CLASSES = ['stringable', 'valueerror', 'unhandledmatcherror', 'weakmap', 'phptoken', 'curlhandle', 'fiber'];

    private const TYPES = ['mixed', 'never', 'null', 'false', 'true', 'static'];

    private const MODIFIERS = [T_PUBLIC, T_PROTECTED, T_PRIVATE, T_VAR];

    /** @var array<int, array{int|string, string, int}> significant tokens: id, text, line */
    private array $t = [];

    /** @var string[] */
    private array $problems = [];

    /**
     * @return string[] one "line N: what" per problem
     */
    public static function check(string $code): array
    {
        $guard = new self();
        $line = 1;
        foreach (token_get_all($code) as $token) {
            if (is_array($token)) {
                $line = $token[2];
                if (!in_array($token[0], [T_WHITESPACE, T_COMMENT, T_DOC_COMMENT, T_INLINE_HTML], true)) {
                    $guard->t[] = [$token[0], $token[1], $line];
                }
            } else {
                $guard->t[] = [$token, $token, $line];
            }
        }
        $guard->scan();

        return $guard->problems;
    }

    private function scan(): void
    {
        $ids = [];
        foreach (self::TOKENS as $name => $what) {
            if (defined($name)) {
                $ids[constant($name)] = $what;
            }
        }
        foreach ($this->t as $i => [$id, $text, $line]) {
            if (is_int($id) && isset($ids[$id]) && !$this->isMemberName($i)) {
                $this->problem($i, $ids[$id]);
            }
            if ($this->isName($i)) {
                $this->name($i);
            }
            if ($id === T_FUNCTION || $id === T_FN) {
                $this->declaration($i);
            }
            if (in_array($id, self::MODIFIERS, true) || $id === T_STATIC) {
                $this->property($i);
            }
            if ($id === T_CATCH) {
                $close = $this->closing($i + 1);
                if (!$this->has($i + 1, $close, T_VARIABLE)) {
                    $this->problem($i, 'catch without a variable');
                }
            }
            if ($id === T_VARIABLE && $this->id($i + 1) === T_DOUBLE_COLON && $this->id($i + 2) === T_CLASS) {
                $this->problem($i, '$object::class');
            }
            if ($id === '(' && $this->id($i + 1) === T_ELLIPSIS && $this->id($i + 2) === ')') {
                $this->problem($i, 'first-class callable syntax (...)');
            }
            if ($id === T_LNUMBER && stripos($text, '0o') === 0) {
                $this->problem($i, 'explicit octal 0o');
            }
        }
    }

    /** A function name, a class name, or a named argument. */
    private function name(int $i): void
    {
        $name = strtolower(ltrim($this->text($i), '\\'));
        $before = $this->id($i - 1);
        $member = $this->isMemberName($i);
        if (!$member && $this->id($i + 1) === '(' && in_array($name, self::FUNCTIONS, true)) {
            $this->problem($i, 'PHP 8 function ' . $name . '()');
        }
        if (!$member && in_array(substr((string) strrchr('\\' . $name, '\\'), 1), self::CLASSES, true)) {
            $this->problem($i, 'PHP 8 class ' . $this->text($i));
        }
        if ($this->id($i + 1) === ':' && in_array($before, ['(', ','], true)) {
            $this->problem($i, 'named argument ' . $this->text($i) . ':');
        }
    }

    /** The parameters and return type of a function, method, closure or arrow function. */
    private function declaration(int $i): void
    {
        $open = $i + 1;
        while ($open < count($this->t) && $this->id($open) !== '(') {
            $open++;
        }
        $close = $this->closing($open);
        $params = $this->split($open, $close);
        $constructor = strtolower($this->text($open - 1)) === '__construct';
        foreach ($params as $n => [$from, $to]) {
            if ($from > $to) {
                if ($n === count($params) - 1 && $n > 0) {
                    $this->problem($close, 'trailing comma in a parameter list');
                }
                continue;
            }
            for ($k = $from; $k <= $to && $this->id($k) !== T_VARIABLE && $this->id($k) !== T_ELLIPSIS; $k++) {
                if (in_array($this->id($k), self::MODIFIERS, true) || (defined('T_READONLY') && $this->id($k) === constant('T_READONLY'))) {
                    $this->problem($k, $constructor ? 'promoted constructor parameter' : 'modifier on a parameter');
                }
            }
            $this->type($from, $k - 1);
        }

        $after = $close + 1;
        if ($this->id($after) === T_USE) {
            $useClose = $this->closing($after + 1);
            if ($this->id($useClose - 1) === ',') {
                $this->problem($useClose, 'trailing comma in a use list');
            }
            $after = $useClose + 1;
        }
        if ($this->id($after) === ':') {
            $end = $after + 1;
            while ($end < count($this->t) && !in_array($this->id($end), ['{', ';', T_DOUBLE_ARROW], true)) {
                $end++;
            }
            $this->type($after + 1, $end - 1);
        }
    }

    /** A typed property: modifiers, then a type, then the variable. */
    private function property(int $i): void
    {
        $k = $i + 1;
        while (in_array($this->id($k), self::MODIFIERS, true) || $this->id($k) === T_STATIC) {
            $k++;
        }
        $from = $k;
        while ($k < count($this->t) && $this->isTypeToken($k)) {
            $k++;
        }
        if ($this->id($k) === T_VARIABLE && $k > $from) {
            $this->type($from, $k - 1);
        }
    }

    private function type(int $from, int $to): void
    {
        for ($k = $from; $k <= $to; $k++) {
            if ($this->id($k) === '|') {
                $this->problem($k, 'union type');
            }
            if ($this->id($k) !== T_DOUBLE_COLON && in_array(strtolower($this->text($k)), self::TYPES, true)
                && $this->id($k - 1) !== '=' && ($k === $from || in_array($this->id($k - 1), ['?', '|', '('], true))) {
                $this->problem($k, 'PHP 8 type ' . $this->text($k));
            }
            if ($this->id($k) === '=') {
                return; // a default value follows: not a type
            }
        }
    }

    /** Whether the token at $i names a method, property or constant, where keywords are allowed. */
    private function isMemberName(int $i): bool
    {
        $before = $this->id($i - 1);

        return in_array($before, [T_OBJECT_OPERATOR, T_DOUBLE_COLON, T_FUNCTION, T_CONST], true)
            || (defined('T_NULLSAFE_OBJECT_OPERATOR') && $before === constant('T_NULLSAFE_OBJECT_OPERATOR'));
    }

    private function isTypeToken(int $k): bool
    {
        $id = $this->id($k);
        $names = [T_STRING, T_ARRAY, T_CALLABLE, T_STATIC, T_NS_SEPARATOR];
        foreach (['T_NAME_QUALIFIED', 'T_NAME_FULLY_QUALIFIED', 'T_NAME_RELATIVE'] as $name) {
            if (defined($name)) {
                $names[] = constant($name);
            }
        }

        return in_array($id, $names, true) || $id === '?' || $id === '|';
    }

    private function isName(int $i): bool
    {
        return is_int($this->id($i)) && preg_match('/^\\\\?[A-Za-z_][A-Za-z0-9_]*(\\\\[A-Za-z_][A-Za-z0-9_]*)*$/', $this->text($i)) === 1;
    }

    /** The index of the bracket that closes the one at $open. */
    private function closing(int $open): int
    {
        $depth = 0;
        for ($k = $open; $k < count($this->t); $k++) {
            $id = $this->id($k);
            if (in_array($id, ['(', '[', '{', T_CURLY_OPEN, T_DOLLAR_OPEN_CURLY_BRACES], true)) {
                $depth++;
            } elseif (in_array($id, [')', ']', '}'], true) && --$depth === 0) {
                return $k;
            }
        }

        return count($this->t) - 1;
    }

    /**
     * The ranges of the comma-separated items between $open and $close.
     *
     * @return array<int, array{int, int}>
     */
    private function split(int $open, int $close): array
    {
        $items = [];
        $from = $open + 1;
        for ($k = $open + 1; $k < $close; $k++) {
            if (in_array($this->id($k), ['(', '[', '{'], true)) {
                $k = $this->closing($k);
            } elseif ($this->id($k) === ',') {
                $items[] = [$from, $k - 1];
                $from = $k + 1;
            }
        }
        if ($close > $open + 1) {
            $items[] = [$from, $close - 1];
        }

        return $items;
    }

    /** @param int|string $id */
    private function has(int $from, int $to, $id): bool
    {
        for ($k = $from; $k <= $to; $k++) {
            if ($this->id($k) === $id) {
                return true;
            }
        }

        return false;
    }

    /** @return int|string|null */
    private function id(int $i)
    {
        return $this->t[$i][0] ?? null;
    }

    private function text(int $i): string
    {
        return $this->t[$i][1] ?? '';
    }

    private function problem(int $i, string $what): void
    {
        $this->problems[] = sprintf('line %d: %s', $this->t[$i][2] ?? 0, $what);
    }
}
