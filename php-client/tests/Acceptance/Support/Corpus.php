<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

/**
 * Payloads that are easy to get wrong on the way from PHP to a browser.
 */
final class Corpus
{
    /**
     * Texts any format carries.
     *
     * @return array<string, string>
     */
    public static function texts(): array
    {
        return [
            'ascii' => 'Hello, world',
            'empty' => '',
            'emoji' => "\u{1F600} \u{1F44D}\u{1F3FD} \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} \u{1F1EB}\u{1F1F7}",
            'cjk' => '漢字 かな カナ 한국어 中文',
            'rtl' => "עברית العربية \u{202E}abc\u{202C} mixed",
            'cdata end' => ']]>',
            'cdata section' => '<![CDATA[inside]]>',
            'markup' => '<b>bold</b> <script>alert(1)</script>',
            'entity text' => '&amp; &lt; &#1; &#x41; &nbsp;',
            'quotes' => "\"double\" 'single' `back`",
            'leading and trailing spaces' => '   padded   ',
            'only white space' => " \t \n ",
            'tabs and newlines' => "\tline 1\n\tline 2\n\n",
            'crlf and lone cr' => "windows\r\nold mac\rend\r",
            'backslashes' => 'C:\\path\\to "x" \\u0041',
            'json-looking' => '{"not":"json, just text"}',
            'line separators' => "a\u{2028}b\u{2029}c",
            'bom and zero width' => "\u{FEFF}x\u{200B}y",
            'edges of unicode' => "\u{7F}\u{80}\u{9F}\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}",
            'long' => str_repeat('0123456789 éà 😀 ', 1000),
        ];
    }

    /**
     * Texts only the JSON format carries: XML cannot.
     *
     * @return array<string, string>
     */
    public static function controlTexts(): array
    {
        return [
            'nul' => "a\0b",
            'bell and escape' => "\x07\e[31mred\e[0m",
            'noncharacters' => "\u{FFFE}\u{FFFF}",
        ];
    }

    /**
     * JSON values, sent as type="json".
     *
     * @return array<string, mixed>
     */
    public static function jsonValues(): array
    {
        return [
            'null' => null,
            'true' => true,
            'zero' => 0,
            'negative' => -42,
            'big int' => PHP_INT_MAX,
            'float' => 3.14159,
            'float with zero fraction' => 2.0,
            'tiny float' => 1.0e-300,
            'list' => [1, 'two', null, false, 4.5],
            'empty list' => [],
            'empty object' => new \stdClass(),
            'nested' => ['user' => ['id' => 42, 'name' => 'Zoë', 'tags' => ['a', 'b'], 'meta' => ['deep' => ['deeper' => [null]]]]],
            'unicode' => ['text' => "漢字 \u{1F600} עברית", 'key é' => 'value ü'],
            'markup' => ['html' => '<b>&amp;</b> ]]>', 'url' => 'https://example.com/a/b?c=d&e=f'],
            'control and nonchars' => ['s' => "\x01\x1F\u{FFFE}\u{FFFF}\r\n"],
            'string' => 'a JSON string',
        ];
    }
}
