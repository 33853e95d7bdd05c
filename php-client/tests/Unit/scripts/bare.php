<?php

/*
 * Run by BarePhpTest under `php -n`: no php.ini, so no curl, XMLWriter, DOM,
 * mbstring, iconv or ctype. Loads the library with the plain autoload.php
 * and prints what it found as JSON.
 */

declare(strict_types=1);

require dirname(__DIR__, 3) . '/autoload.php';

$root = dirname(__DIR__, 3) . '/src/';
$loaded = [];
$files = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($root, FilesystemIterator::SKIP_DOTS));
foreach ($files as $file) {
    $name = 'Cometbox\\' . str_replace('/', '\\', substr((string) $file, strlen($root), -4));
    $loaded[$name] = class_exists($name) || interface_exists($name) || trait_exists($name);
}

$curl = '';
try {
    new Cometbox\Transport\CurlTransport();
} catch (Cometbox\Exception\LogicException $e) {
    $curl = $e->getMessage();
}

echo json_encode([
    'extensions' => ['curl' => extension_loaded('curl'), 'xmlwriter' => extension_loaded('xmlwriter'), 'mbstring' => extension_loaded('mbstring')],
    'loaded' => $loaded,
    'transport' => get_class(Cometbox\Transport\Transports::detect()),
    'curlError' => $curl,
    'xml' => (new Cometbox\Format\XmlFormat())->encode([
        Cometbox\Message::text('alice', "a\r\n]]> & <b> \"é\" 😀"),
        Cometbox\Message::json('bob', ['x' => "\u{FFFE}"]),
    ]),
    'badByte' => Cometbox\Internal\Text::firstBadByte("ok\xFF"),
]);
