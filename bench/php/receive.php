<?php
// The receiver senders document (workspace webhooks' PHP example, verbatim in
// its checks), plus what a durable receiver must do with the body: spool it
// the maildir way, with the same fsyncs hookguard makes.

function verifySignature(string $payloadContents, string $receivedSignature) {
    $secretKey = getenv('SECRET_KEY');

    $signature = hash_hmac('sha256', $payloadContents, $secretKey);

    if (!hash_equals($signature, $receivedSignature)) {
       http_response_code(500);
       echo "Could not verify the request signature.";
       exit;
    }
}

$payloadContents = file_get_contents('php://input');
$receivedSignature = isset($_SERVER['HTTP_X_SIGNATURE']) ? $_SERVER['HTTP_X_SIGNATURE'] : '';
verifySignature($payloadContents, $receivedSignature);

// tmp/ -> fsync -> rename into new/ -> fsync new/, then 200.
$spool = getenv('SPOOL_DIR');
$name = bin2hex(random_bytes(16)) . '.json';
$staged = "$spool/tmp/$name";
$file = fopen($staged, 'x');
if ($file === false || fwrite($file, $payloadContents) !== strlen($payloadContents) || !fsync($file)) {
    http_response_code(503);
    exit;
}
fclose($file);
rename($staged, "$spool/new/$name");
$dir = fopen("$spool/new", 'r');
if ($dir === false || !fsync($dir)) {
    http_response_code(503);
    exit;
}
fclose($dir);
echo "ok";
